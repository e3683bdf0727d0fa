"""PyLate (``pylate.models.ColBERT``, PyLate 1.6) as a ColBERT library, in an environment of its own: PyLate
pins sentence-transformers 5.3 (``pip install 'embedkit[pylate]'``). Heavy imports happen inside the methods.

PyLate's ``encode`` defaults to ``is_query=True`` (query expansion); documents are always encoded with
``is_query=False`` here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from typing import Any

import numpy as np

from embedkit.errors import EmbedkitError

DISTRIBUTION = "pylate"
INSTALL = ("pip install 'embedkit[pylate]' in an environment of its own (PyLate pins sentence-transformers 5.3; "
           "`make test-pylate` creates one in .venv-pylate)")


def _pylate() -> Any:
    try:
        import pylate
        from pylate import losses, models, scores, utils  # noqa: F401  (the submodules embedkit uses)
    except ImportError as exc:  # installed beside a stack it does not support
        raise EmbedkitError(f"PyLate is installed but cannot be imported here ({exc}); {INSTALL}") from None
    return pylate


class PyLateColbert:
    name = "pylate"

    def unavailable(self) -> str | None:
        if find_spec("pylate") is None:
            return f"PyLate is not installed: {INSTALL}"
        return None

    def version(self) -> str:
        try:
            return version(DISTRIBUTION)
        except PackageNotFoundError:
            return "unknown"

    def owns(self, model: Any) -> bool:
        return isinstance(model, _pylate().models.ColBERT)

    # ----------------------------------------------------------------- models

    def build(self, name: str, colbert: Any, fresh: bool, device: str | None, trust_remote_code: bool) -> Any:
        fields = dict(embedding_size=colbert.embedding_dim, query_prefix=colbert.query_prefix,
                      document_prefix=colbert.document_prefix, query_length=colbert.query_length,
                      document_length=colbert.document_length)
        kwargs = {k: v for k, v in fields.items() if v is not None}  # null: the checkpoint's own value
        return _pylate().models.ColBERT(model_name_or_path=name, device=device, trust_remote_code=trust_remote_code,
                                        **kwargs)

    def encode(self, model: Any, texts: list[str], *, query: bool, batch_size: int,
               show_progress: bool) -> list[np.ndarray]:
        if not texts:
            return []
        out = model.encode(texts, is_query=query, batch_size=batch_size, convert_to_numpy=True,
                           show_progress_bar=show_progress)
        return [np.ascontiguousarray(e, dtype=np.float32) for e in out]  # each (tokens_i, dim)

    def document_side(self, model: Any) -> Any:
        from embedkit.models.packed import pylate_documents

        return pylate_documents(model)

    def padded_query_length(self, model: Any) -> int:
        if model.do_query_expansion and not model.attend_to_expansion_tokens:
            return int(model.query_length or 0)
        return 0

    def dim(self, model: Any) -> int:
        return int(model[-1].out_features)

    def set_document_length(self, model: Any, length: int) -> None:
        model.document_length = length

    def document_length(self, model: Any) -> int | None:
        return int(model.document_length) if model.document_length else None

    def maxsim(self, query: np.ndarray, documents: list[np.ndarray]) -> np.ndarray:
        """PyLate's ``colbert_scores`` over documents padded to one length."""
        import torch

        if not documents:
            return np.zeros(0, np.float32)
        longest = max(len(d) for d in documents)
        # Pad by repeating a document's own first token: a copy never changes a max, whereas zero padding (what
        # PyLate's documents_mask amounts to) would win over a document whose similarities are all negative.
        docs = torch.from_numpy(np.stack([np.concatenate([d, np.repeat(d[:1], longest - len(d), axis=0)])
                                          for d in documents]))  # (num_documents, longest, dim)
        with torch.inference_mode():
            scores = _pylate().scores.colbert_scores(torch.from_numpy(query)[None], docs)  # (1, num_documents)
        return scores[0].float().numpy()

    # ----------------------------------------------------------------- training

    def trainer_classes(self) -> tuple[type, type]:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

        return SentenceTransformerTrainer, SentenceTransformerTrainingArguments  # PyLate trains on these

    def trainer_arguments(self, model: Any) -> dict[str, Any]:
        return {"data_collator": _pylate().utils.ColBERTCollator(tokenize_fn=model.tokenize)}

    def training_arguments(self, model: Any, columns: list[str], distillation: bool) -> dict[str, Any]:
        if not distillation:  # the markers: PyLate's collator inserts them as token ids
            return {}
        from sentence_transformers.training_args import BatchSamplers

        # Rows hold lists of documents: the no-duplicates sampler cannot hash them (and KD rows are unique).
        return {"batch_sampler": BatchSamplers.BATCH_SAMPLER, "remove_unused_columns": False}

    def contrastive_loss(self, model: Any, gather: bool) -> Any:
        return _pylate().losses.Contrastive(model=model, gather_across_devices=gather)

    def cached_contrastive_loss(self, model: Any, mini_batch_size: int, gather: bool) -> Any:
        base = _pylate().losses.CachedContrastive

        class CachedContrastive(base):
            """PyLate 1.6 back-propagates the *summed* per-row losses but returns their mean, so its gradients
            are batch_size times those of ``Contrastive`` on the same batch (tests/train/test_colbert.py checks
            this). Dividing the cached embedding gradients by the batch size makes the two losses equivalent."""

            def calculate_loss_and_cache_gradients(self, reps, masks):
                loss = super().calculate_loss_and_cache_gradients(reps, masks)
                if self.size_average:
                    rows = sum(r.shape[0] for r in reps[0])  # anchors in the whole batch
                    self.cache = [[None if g is None else g / rows for g in grads] for grads in self.cache]
                return loss

        return CachedContrastive(model=model, mini_batch_size=mini_batch_size, gather_across_devices=gather)

    def distillation_loss(self, model: Any) -> Any:
        return _pylate().losses.Distillation(model=model)  # KL(teacher || min-max scaled MaxSim) per query

    def distillation_rows(self, train: Any, queries: Any, documents: Any, n_ways: int) -> Any:
        """(query, documents, scores): what PyLate's ``ColBERTCollator`` and ``Distillation`` read."""
        train.set_transform(_pylate().utils.KDProcessing(queries=queries, documents=documents, n_ways=n_ways).transform)
        return train

    def ir_evaluator(self, queries: dict[str, str], corpus: dict[str, str], relevant: dict[str, set[str]],
                     batch_size: int, metrics: dict[str, list[int]]) -> Any:
        from pylate.evaluation import PyLateInformationRetrievalEvaluator

        return PyLateInformationRetrievalEvaluator(
            queries=queries, corpus=corpus, relevant_docs=relevant, name="", batch_size=batch_size,
            score_functions={"maxsim": _pylate().scores.colbert_scores}, show_progress_bar=False, **metrics)


LIBRARY = PyLateColbert()
