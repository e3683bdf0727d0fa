"""Learned sparse (SPLADE) models: sentence-transformers' ``SparseEncoder``, built from any masked-language-model
checkpoint per ``sparse.architecture`` (the one registry of sparse architectures, :data:`ARCHITECTURES`), or
loaded as saved; and :class:`SparseVectorEncoder`, the :class:`~embedkit.models.encoder.Encoder` that turns
texts into ``scipy.sparse`` CSR rows of vocabulary weights for the sparse index backends.

``SparseEncoder(path)`` on a dense sentence-transformers folder builds CSR (that model plus a sparse
autoencoder), not SPLADE: embedkit builds what the recipe names instead of what the library guesses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.config import ModelConfig, PackedMode, SparseConfig
from embedkit.errors import EmbedkitError
from embedkit.models.loading import hub_error, remote_code_error

logger = logging.getLogger(__name__)

SPARSE_MODULES = ("SpladePooling", "SparseStaticEmbedding", "SparseAutoEncoder")  # what only sparse models hold
POOLING_CHUNK_TOKENS = 4096  # tokens projected onto the vocabulary at once when encoding (see bound_projection)


def is_sparse_checkpoint(name: str) -> bool:
    """Whether a local folder is a saved ``SparseEncoder`` (its config or modules name a sparse module)."""
    folder = Path(name)
    config = folder / "config_sentence_transformers.json"
    if config.is_file():
        try:
            if json.loads(config.read_text(encoding="utf-8")).get("model_type") == "SparseEncoder":
                return True
        except (OSError, ValueError):
            pass
    modules = folder / "modules.json"
    text = modules.read_text(encoding="utf-8") if modules.is_file() else ""
    for router in folder.glob("*Router*/router_config.json"):  # inference-free: the modules sit in a Router
        text += router.read_text(encoding="utf-8")
    return any(name in text for name in SPARSE_MODULES)


def _check_mlm(name: str, trust_remote_code: bool) -> None:
    """A clear error before any weights load when ``name`` has no masked-language-model class in transformers
    (SPLADE's vocabulary weights come from that head)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - a hub or file error, said in one line
        raise remote_code_error(name, exc) or hub_error(name, exc) from None
    if config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not trust_remote_code:
        raise EmbedkitError(f"kind sparse: {name} is a {config.model_type!r} checkpoint, which has no masked-language "
                            "head (SPLADE weights vocabulary terms with it); use an MLM checkpoint (ModernBERT, "
                            "BERT, all-MiniLM-L6-v2...) or sparse.architecture: csr")


def _transformer(model: ModelConfig, task: str | None) -> Any:
    from sentence_transformers.sparse_encoder.modules import Transformer

    kwargs: dict[str, Any] = {"model_kwargs": {"trust_remote_code": model.trust_remote_code}}
    if model.max_seq_length:
        kwargs["max_seq_length"] = model.max_seq_length
    if task:
        kwargs["transformer_task"] = task
    return Transformer(model.name, **kwargs)


def _splade(model: ModelConfig) -> list[Any]:
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    _check_mlm(model.name, model.trust_remote_code)
    return [_transformer(model, "fill-mask"), SpladePooling(pooling_strategy="max")]


def _inference_free(model: ModelConfig) -> list[Any]:
    """Documents through the MLM + SPLADE pooling; queries through a static weight per token (trained)."""
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding

    document = _splade(model)
    static = SparseStaticEmbedding(tokenizer=document[0].tokenizer, frozen=False)
    return [Router.for_query_document(query_modules=[static], document_modules=document)]


def _csr(model: ModelConfig) -> list[Any]:
    """A pooled dense vector made sparse by a k-sparse autoencoder (CSR); 4x the hidden size, 256 active."""
    from sentence_transformers.sentence_transformer.modules import Pooling
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder

    transformer = _transformer(model, None)
    dim = transformer.get_embedding_dimension()
    return [transformer, Pooling(dim, pooling_mode=model.pooling),
            SparseAutoEncoder(input_dim=dim, hidden_dim=4 * dim, k=min(256, dim), k_aux=min(512, 2 * dim))]


ARCHITECTURES: dict[str, Callable[[ModelConfig], list[Any]]] = {
    "splade": _splade,
    "inference-free": _inference_free,
    "csr": _csr,
}


def build_sparse_model(model: ModelConfig, sparse: SparseConfig) -> Any:
    """A ``SparseEncoder``: a saved sparse model as it is, else ``model.name``'s backbone as
    ``sparse.architecture`` says (a dense sentence-transformers folder gives its transformer)."""
    from sentence_transformers import SparseEncoder

    if is_sparse_checkpoint(model.name):
        return load_sparse_model(model.name, trust_remote_code=model.trust_remote_code)
    try:
        modules = ARCHITECTURES[sparse.architecture](model)
    except EmbedkitError:
        raise
    except OSError as exc:
        raise hub_error(model.name, exc) from None
    return SparseEncoder(modules=modules, similarity_fn_name="dot")


def load_sparse_model(name: str, trust_remote_code: bool = False) -> Any:
    """A saved ``SparseEncoder``; a folder that is not one is refused (``SparseEncoder`` would otherwise build
    CSR or SPLADE from it silently)."""
    from sentence_transformers import SparseEncoder

    if Path(name).exists() and not is_sparse_checkpoint(name):
        raise EmbedkitError(f"{name} is not a sparse model (no SPLADE pooling, static embedding or sparse "
                            "autoencoder in its modules): train one with kind: sparse, or index it with a dense "
                            "backend")
    try:
        return SparseEncoder(name, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise hub_error(name, exc) from None


def to_csr(embeddings: Any, dim: int) -> Any:
    """A torch sparse (COO) or dense (n, dim) tensor as a float32 ``scipy.sparse.csr_matrix`` (n, dim)."""
    import scipy.sparse as sp
    import torch

    if embeddings.is_sparse:
        embeddings = embeddings.coalesce()
        rows, cols = embeddings.indices().cpu().numpy()
        values = embeddings.values().detach().float().cpu().numpy()
    else:
        rows, cols = torch.nonzero(embeddings, as_tuple=True)
        values = embeddings[rows, cols].detach().float().cpu().numpy()
        rows, cols = rows.cpu().numpy(), cols.cpu().numpy()
    keep = values > 0  # SPLADE weights are >= 0; an explicit zero is no term
    matrix = sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=(len(embeddings), dim), dtype=np.float32)
    matrix.sort_indices()
    return matrix


class SparseVectorEncoder:
    """A ``SparseEncoder`` as embedkit encodes with it: texts to CSR rows (n, vocabulary), queries through the
    model's query route (inference-free models: static weights) and documents through its document route.
    A ModernBERT backbone runs the packed forward (``packed`` not ``off``) inside the library's own encode."""

    normalize = False

    def __init__(self, model: Any, batch_size: int = 32, chunk_tokens: int | None = POOLING_CHUNK_TOKENS,
                 packed: PackedMode = "auto"):
        self.model = model
        self.batch_size = batch_size
        self.packed = False
        if packed != "off":
            from embedkit.models.packed import enable_packed

            self.packed = enable_packed(model, mode=packed)  # SPLADE pooling ignores masked positions: no fallback
        if chunk_tokens:
            from embedkit.models.sparse_projection import bound_projection

            bound_projection(model, chunk_tokens)

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def manifest(self) -> dict[str, str]:
        return {}

    def _encode(self, method: Callable, texts: list[str]) -> Any:
        if not texts:
            import scipy.sparse as sp

            return sp.csr_matrix((0, self.dim), dtype=np.float32)
        return to_csr(method(texts, batch_size=self.batch_size, convert_to_sparse_tensor=True,
                             show_progress_bar=False), self.dim)

    def encode_documents(self, texts: list[str]) -> Any:
        return self._encode(self.model.encode_document, texts)

    def encode_queries(self, texts: list[str]) -> Any:
        return self._encode(self.model.encode_query, texts)

    def prepare_documents(self, texts: list[str]) -> None:
        """Nothing to prepare."""

    def terms(self, ids: np.ndarray) -> list[str]:
        """The vocabulary terms of term ids."""
        return self.model.tokenizer.convert_ids_to_tokens([int(i) for i in ids])


def lexical_head(model: Any, scale: float = 3.0, bias: float = -4.5) -> int:
    """Set a BERT-style MLM head transform (``cls.predictions.transform.dense``) to ``scale`` x identity and shift
    the decoder bias by ``bias``: the head then reads the last hidden states against the (tied) word embeddings,
    about a hundred lexical terms a text. For checkpoints that ship no head transform (the packaged
    all-MiniLM-L6-v2, a sentence-embedding model): an untrained but meaningful starting point, used by the tests
    and eval/sparse_bench.py. Returns the number of heads changed."""
    import torch

    changed = 0
    for module in model.modules():
        predictions = getattr(getattr(module, "cls", None), "predictions", None)
        transform = getattr(predictions, "transform", None)
        if transform is None or not hasattr(transform, "dense"):
            continue
        with torch.no_grad():
            transform.dense.weight.copy_(scale * torch.eye(transform.dense.weight.shape[0]))
            transform.dense.bias.zero_()
            module.get_output_embeddings().bias += bias
        changed += 1
    return changed
