"""Single-vector (DPR-style) models: sentence-transformers, built from a recipe or loaded from a folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from embedkit.config import ModelConfig, PackedMode
from embedkit.errors import EmbedkitError
from embedkit.models.loading import (
    check_length,
    hub_error,
    is_sentence_transformers_folder,
    remote_code_error,
    resolve_model,
)
from embedkit.models.sorted_batches import can_sort, encode_sorted
from embedkit.models.token_budget import cpu_token_budget

logger = logging.getLogger(__name__)


def build_dense_model(cfg: ModelConfig, device: str | None = None):
    """A SentenceTransformer for training: an existing ST model as is, or backbone + pooling per recipe."""
    from sentence_transformers import SentenceTransformer, models

    name = resolve_model(cfg.name)
    check_length(name, cfg.max_seq_length, "model.max_seq_length")
    kwargs = {"trust_remote_code": cfg.trust_remote_code}
    try:
        if is_sentence_transformers_folder(name):
            model = SentenceTransformer(name, device=device, **kwargs)
            if cfg.max_seq_length is not None:  # None keeps the length the model ships with
                model.max_seq_length = cfg.max_seq_length
        else:
            # max_seq_length None: the backbone's own limit (sentence-transformers reads it from its config)
            backbone = models.Transformer(name, max_seq_length=cfg.max_seq_length,
                                          model_args=kwargs, tokenizer_args=kwargs, config_args=kwargs)
            pooling = models.Pooling(backbone.get_word_embedding_dimension(), pooling_mode=cfg.pooling)
            modules = [backbone, pooling] + ([models.Normalize()] if cfg.similarity == "cosine" else [])
            model = SentenceTransformer(modules=modules, device=device)
    except OSError as exc:
        raise hub_error(cfg.name, exc) from None
    except ValueError as exc:
        raise remote_code_error(cfg.name, exc) or exc from None
    model.similarity_fn_name = cfg.similarity
    prompts = {k: v for k, v in (("query", cfg.query_prompt), ("document", cfg.document_prompt)) if v}
    if prompts:
        model.prompts = {**model.prompts, **prompts}
    return model


def load_dense_model(name: str, device: str | None = None, trust_remote_code: bool = False):
    """Load a model for encoding; a raw backbone gets mean pooling (sentence-transformers' default)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_model(name)
    from embedkit.models.sparse import is_sparse_checkpoint

    if is_sparse_checkpoint(path):
        raise EmbedkitError(f"{name} is a sparse (SPLADE) model, not a dense one: index it with kind sparse "
                            "(backend sparse-exact or seismic, or auto)")
    try:
        return SentenceTransformer(path, device=device, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise hub_error(name, exc) from None
    except ValueError as exc:
        raise remote_code_error(name, exc) or exc from None


@dataclass
class DenseEncoder:
    """Encodes queries and documents with the model's own prompts and similarity.

    Cosine models are L2-normalised so that inner product (FAISS ``METRIC_INNER_PRODUCT``) is the score.
    A ModernBERT model (``packed`` not ``off``) is encoded packed, in whole token-budget batches tokenised
    ahead on worker threads (:class:`~embedkit.models.packed.PackedTextEncoder`, one per prompt, one
    host pipeline for both); :meth:`prepare_documents` starts tokenising texts a later
    :meth:`encode_documents` call will get. Any other model is encoded in batches of nearly equal token length
    (:func:`~embedkit.models.sorted_batches.encode_sorted`), whatever runs its transformer.
    """

    model: object
    batch_size: int = 64
    show_progress: bool = False
    packed: PackedMode = "auto"

    def __post_init__(self) -> None:
        self.normalize = getattr(self.model, "similarity_fn_name", None) in (None, "cosine")
        self._packed = False
        if self.packed != "off":
            from embedkit.models.packed import enable_packed

            self._packed = enable_packed(self.model, mode=self.packed)
        if self._packed:
            logger.info("using the packed ModernBERT forward")
        # Pack whole token-budget batches, tokenised ahead (no padding at all), not just each ST batch.
        self.pack_batches = self._packed
        self._packers: dict[str | None, object] = {}
        self._pipeline = None
        from embedkit.models.packed import PreparedJobs

        self._prepared = PreparedJobs()
        self._budget: tuple[object, int | None] = (None, None)  # (the model state it was worked out for, budget)

    @property
    def dim(self) -> int:
        from embedkit.models.packed import embedding_dimension

        return embedding_dimension(self.model)

    @property
    def manifest(self) -> dict[str, str]:
        """Nothing beyond the model: its name and fingerprint are already in the index manifest."""
        return {}

    @property
    def document_length(self) -> int | None:
        """The length in tokens documents are cut at: the model's ``max_seq_length`` (its own unless set)."""
        length = getattr(self.model, "max_seq_length", None)
        return int(length) if length else None

    def _prompt_name(self, prompt_name: str | None) -> str | None:
        return prompt_name if prompt_name in getattr(self.model, "prompts", {}) else None

    def _packer(self, prompt_name: str | None):
        """The packed encoder for this prompt (``None`` when this model is not encoded packed)."""
        if not self.pack_batches or getattr(self.model, "truncate_dim", None):
            return None
        if prompt_name not in self._packers:
            from embedkit.models.packed import HostPipeline, PackedTextEncoder

            if self._pipeline is None:
                self._pipeline = HostPipeline.for_device(self.model.device)
            prompt = self.model.prompts.get(prompt_name) if prompt_name else None
            self._packers[prompt_name] = PackedTextEncoder(self.model, prompt, normalize=self.normalize,
                                                           strict=self.packed == "on", pipeline=self._pipeline)
        return self._packers[prompt_name]

    def prepare_documents(self, texts: list[str]) -> None:
        """Start tokenising ``texts`` for a coming :meth:`encode_documents` call (packed models; else nothing)."""
        packer = self._packer(self._prompt_name("document"))
        if packer is not None:
            self._prepared.add(texts, packer.submit)

    def _token_budget(self) -> int | None:
        """:func:`~embedkit.models.token_budget.cpu_token_budget` of the model, worked out again only when its
        weights change (a bf16 cast, a switch to another runtime) or its length does: walking the modules costs
        about 0.3 ms, a tenth of a short query's encoding."""
        first = next(self.model.parameters(), None)
        state = (None if first is None else (id(first), first.dtype, first.device),
                 getattr(self.model, "max_seq_length", None))
        if self._budget[0] != state:
            self._budget = (state, cpu_token_budget(self.model))
        return self._budget[1]

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        prompt_name = self._prompt_name(prompt_name)
        packer = self._packer(prompt_name)
        if packer is not None:
            return packer.encode(texts, job=self._prepared.take(texts), show_progress_bar=self.show_progress)
        if texts and not self._packed and can_sort(self.model):  # a packed model batches by its own hints
            prompt = self.model.prompts.get(prompt_name) if prompt_name else None
            return encode_sorted(self.model, texts, prompt, self.batch_size, self.normalize,
                                 getattr(self.model, "truncate_dim", None), self.show_progress,
                                 max_tokens=self._token_budget())
        emb = self.model.encode(texts, prompt_name=prompt_name, batch_size=self.batch_size,
                                convert_to_numpy=True, normalize_embeddings=self.normalize,
                                show_progress_bar=self.show_progress)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "document")


def set_truncate_dim(encoder: object, dim: int | None) -> None:
    """Matryoshka: keep only the first ``dim`` dimensions of every query and document embedding
    (sentence-transformers truncates before normalising, so cosine stays cosine)."""
    if not dim:
        return
    from embedkit.errors import EmbedkitError

    if not isinstance(encoder, DenseEncoder):
        raise EmbedkitError("truncate_dim applies to dense (single-vector) models only")
    encoder.model.truncate_dim = None
    full = int(encoder.model.get_sentence_embedding_dimension())
    if not 1 <= dim <= full:
        raise EmbedkitError(f"truncate_dim {dim}: the model's embeddings have {full} dimensions")
    encoder.model.truncate_dim = dim
