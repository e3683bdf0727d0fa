"""sentence-transformers' ``MultiVectorEncoder`` (sentence-transformers >= 6) as a ColBERT library.

A fresh model is put together as PyLate builds one, in the same order under the same seed, so that a backbone
wrapped here and in PyLate gives the same token vectors (tests/models/test_colbert_libraries.py): the
backbone, a bias-free linear projection on every token, the [Q]/[D] markers added to the tokenizer as
PyLate adds them (and prepended as prompts, which tokenises to the same ids), queries padded with [MASK] to
``query_length`` and scored on every position (query expansion, the expansion tokens not attended to),
documents cut at ``document_length`` with punctuation left out of scoring (PyLate's skiplist), and the
vectors L2-normalised. Heavy imports happen inside the methods.
"""

from __future__ import annotations

import string
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

DISTRIBUTION = "sentence-transformers"


def _transformer(model: Any) -> Any:
    from sentence_transformers.base.modules import Transformer

    return next(m for m in model if isinstance(m, Transformer))


def _expansion(length: int) -> dict[str, Any]:
    """ColBERT's query expansion: pad to ``length`` with [MASK], not attended to, every position scored."""
    return {"strategy": "fixed", "attend": False, "length": length}


def _projection(in_features: int, out_features: int) -> Any:
    from sentence_transformers.base.modules.dense import Dense
    from torch import nn

    return Dense(in_features, out_features, bias=False, activation_function=nn.Identity(),
                 module_input_name="token_embeddings")


def _add_markers(transformer: Any, markers: list[str]) -> None:
    """Add the markers to the tokenizer and grow the embeddings, as PyLate does (same calls, same order)."""
    tokenizer = transformer.tokenizer
    markers = [m for m in markers if m]
    if not markers or all(m in tokenizer.get_vocab() for m in markers):
        return
    transformer.auto_model.resize_token_embeddings(len(tokenizer))
    tokenizer.add_tokens(markers)
    transformer.auto_model.resize_token_embeddings(len(tokenizer))


def minmax_colbert_kd_scores(queries_embeddings: Any, documents_embeddings: Any, **kwargs: Any) -> Any:
    """MaxSim scores of each query's candidates, min-max scaled per query, as PyLate's ``Distillation`` scores
    them (``normalize_scores=True``): the objective of the paper's ColBERT recipe, on either library.

    Args:
        queries_embeddings: (batch_size, query_tokens, dim); documents_embeddings: (batch_size, n_ways,
            document_tokens, dim); masks as ``colbert_kd_scores`` takes them.

    Returns:
        (batch_size, n_ways), each row in [0, 1].
    """
    from sentence_transformers.multi_vector_encoder.scoring import colbert_kd_scores

    scores = colbert_kd_scores(queries_embeddings, documents_embeddings, **kwargs)  # (batch_size, n_ways)
    low = scores.min(dim=1, keepdim=True).values
    high = scores.max(dim=1, keepdim=True).values
    return (scores - low) / (high - low + 1e-8)


class SentenceTransformersColbert:
    name = "sentence-transformers"

    def unavailable(self) -> str | None:
        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:
            return "sentence-transformers is not installed (pip install 'sentence-transformers>=6')"
        if int(found.split(".")[0]) < 6:
            return (f"it needs sentence-transformers >= 6 (MultiVectorEncoder), this environment has {found} "
                    "(PyLate's pin; use colbert.library: pylate or auto here)")
        return None

    def version(self) -> str:
        return version(DISTRIBUTION)

    def owns(self, model: Any) -> bool:
        from sentence_transformers import MultiVectorEncoder

        return isinstance(model, MultiVectorEncoder)

    # ----------------------------------------------------------------- models

    def build(self, name: str, colbert: Any, fresh: bool, device: str | None, trust_remote_code: bool) -> Any:
        from sentence_transformers import MultiVectorEncoder

        if not fresh:
            model = MultiVectorEncoder(name, device=device, trust_remote_code=trust_remote_code)
            self._override(model, colbert)
            return model
        from sentence_transformers.base.modules import Normalize, Transformer
        from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

        from embedkit.models.colbert.checkpoints import transformer_folder

        remote = {"trust_remote_code": trust_remote_code}
        backbone = Transformer(transformer_folder(name), model_kwargs=remote, processor_kwargs=remote,
                               config_kwargs=remote, document_length=colbert.document_length,
                               query_expansion=_expansion(colbert.query_length))
        projection = _projection(backbone.get_embedding_dimension(), colbert.embedding_dim)  # before the markers
        _add_markers(backbone, [colbert.query_prefix, colbert.document_prefix])
        modules = [backbone, projection, MultiVectorMask(skiplist_words=list(string.punctuation)),
                   Normalize(module_input_name="token_embeddings")]
        return MultiVectorEncoder(modules=modules, device=device, similarity_fn_name="maxsim",
                                  prompts={"query": colbert.query_prefix, "document": colbert.document_prefix})

    def _override(self, model: Any, colbert: Any) -> None:
        """The recipe's explicit (non-null) values on a checkpoint, as PyLate applies its keyword arguments."""
        from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

        backbone = _transformer(model)
        if colbert.query_length is not None:
            if backbone.query_expansion is not None:
                backbone.query_expansion = {**backbone.query_expansion, "length": colbert.query_length}
            else:
                backbone.query_length = colbert.query_length
        if colbert.document_length is not None:
            backbone.document_length = colbert.document_length
        markers = {"query": colbert.query_prefix, "document": colbert.document_prefix}
        if any(v is not None for v in markers.values()):
            _add_markers(backbone, [v for v in markers.values() if v])
            model.prompts.update({k: v for k, v in markers.items() if v is not None})
        if colbert.embedding_dim is not None and colbert.embedding_dim != self.dim(model):
            # a further projection to the asked size, as PyLate appends one: before the scoring mask
            position = next(i for i, m in enumerate(model) if isinstance(m, MultiVectorMask))
            model.insert(position, _projection(self.dim(model), colbert.embedding_dim).to(model.device))

    def encode(self, model: Any, texts: list[str], *, query: bool, batch_size: int,
               show_progress: bool) -> list[np.ndarray]:
        if not texts:
            return []
        encode = model.encode_query if query else model.encode_document
        out = encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=show_progress)
        return [np.ascontiguousarray(e, dtype=np.float32) for e in out]  # each (tokens_i, dim)

    def document_side(self, model: Any) -> Any:
        from embedkit.models.packed import sentence_transformers_documents

        return sentence_transformers_documents(model)

    def padded_query_length(self, model: Any) -> int:
        expansion = _transformer(model).query_expansion  # {"strategy", "attend", "length", ...} or None
        if isinstance(expansion, dict) and not expansion.get("attend", True):
            return int(expansion.get("length") or 0)
        return 0

    def dim(self, model: Any) -> int:
        return int(model.get_embedding_dimension())

    def set_document_length(self, model: Any, length: int) -> None:
        _transformer(model).document_length = length

    def document_length(self, model: Any) -> int | None:
        length = _transformer(model).document_length or model.max_seq_length  # None: the backbone's own limit
        return int(length) if length else None

    def maxsim(self, query: np.ndarray, documents: list[np.ndarray]) -> np.ndarray:
        """sentence-transformers' ``maxsim`` over documents of different lengths (it masks the padding)."""
        import torch
        from sentence_transformers.multi_vector_encoder import maxsim

        if not documents:
            return np.zeros(0, np.float32)
        with torch.inference_mode():
            scores = maxsim(torch.from_numpy(query)[None], [torch.from_numpy(d) for d in documents])  # (1, n)
        return scores[0].float().numpy()

    # ----------------------------------------------------------------- training

    def trainer_classes(self) -> tuple[type, type]:
        from sentence_transformers import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments

        return MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments

    def trainer_arguments(self, model: Any) -> dict[str, Any]:
        return {}  # MultiVectorEncoderDataCollator: column 0 is the query, the others documents

    def training_arguments(self, model: Any, columns: list[str], distillation: bool) -> dict[str, Any]:
        """The trainer's collator prepends only the prompts it is given (by column), not the model's: without
        them the model would train without the [Q]/[D] markers it encodes with."""
        query, document = model.prompts.get("query") or "", model.prompts.get("document") or ""
        prompts = {c: (query if i == 0 else document) for i, c in enumerate(columns)}
        args: dict[str, Any] = {"prompts": {c: p for c, p in prompts.items() if p}} if query or document else {}
        if distillation:
            from sentence_transformers.sentence_transformer.training_args import BatchSamplers

            # rows are resolved by a transform (ids -> texts) and hold lists: keep them whole, in order
            args |= {"batch_sampler": BatchSamplers.BATCH_SAMPLER, "remove_unused_columns": False}
        return args

    def contrastive_loss(self, model: Any, gather: bool) -> Any:
        from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss

        return MultiVectorMultipleNegativesRankingLoss(model, gather_across_devices=gather,
                                                       similarity_fct=_in_batch_scores(model))

    def cached_contrastive_loss(self, model: Any, mini_batch_size: int, gather: bool) -> Any:
        from sentence_transformers.multi_vector_encoder.losses import CachedMultiVectorMultipleNegativesRankingLoss

        return CachedMultiVectorMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size,
                                                             gather_across_devices=gather,
                                                             similarity_fct=_in_batch_scores(model))

    def distillation_loss(self, model: Any) -> Any:
        from sentence_transformers.multi_vector_encoder.losses import MultiVectorDistillKLDivLoss

        return MultiVectorDistillKLDivLoss(model, similarity_fct=minmax_colbert_kd_scores)

    def distillation_rows(self, train: Any, queries: Any, documents: Any, n_ways: int) -> Any:
        """(query, document_1, ..., document_n, scores): the columns ``MultiVectorDistillKLDivLoss`` reads."""
        from sentence_transformers.util import resolve_ids

        train.set_transform(resolve_ids({"query_id": (queries, "query_id", "text"),
                                         "document_ids": (documents, "document_id", "text")},
                                        keep_columns=["scores"], max_list_length=n_ways))
        return train

    def ir_evaluator(self, queries: dict[str, str], corpus: dict[str, str], relevant: dict[str, set[str]],
                     batch_size: int, metrics: dict[str, list[int]]) -> Any:
        from sentence_transformers.multi_vector_encoder.evaluation import MultiVectorInformationRetrievalEvaluator

        return MultiVectorInformationRetrievalEvaluator(queries=queries, corpus=corpus, relevant_docs=relevant,
                                                        name="", batch_size=batch_size, show_progress_bar=False,
                                                        **metrics)


LIBRARY = SentenceTransformersColbert()


def _in_batch_scores(model: Any) -> Any:
    """The in-batch score function these losses use when given none (the model's own MaxSim over every query ×
    document group), bound to the model itself: under torchrun the trainer swaps the loss's ``model`` for the
    DistributedDataParallel wrapper, on which sentence-transformers 6.3 then looks up ``similarity`` and fails."""
    from functools import partial

    try:
        from sentence_transformers.multi_vector_encoder.scoring.colbert import _colbert_scores
    except ImportError:  # before 6.3 the default (colbert_scores) reads nothing from the model: keep it
        return None
    return partial(_colbert_scores, model.similarity)
