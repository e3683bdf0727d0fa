"""The learned sparse (SPLADE) parts of training: a ``SparseEncoder`` of the recipe's ``sparse.architecture``,
(query, positive, negatives...) rows or teacher-scored lists (the distillation layout), sentence-transformers'
``SparseEncoderTrainer``, and for inference-free models the router mapping (queries to the static weights,
documents to the MLM). The driver (embedkit.train.run) does the rest; the losses are in embedkit.train.losses."""

from __future__ import annotations

from typing import Any

from embedkit.config import Recipe
from embedkit.train.colbert import N_WAYS, load_distillation_data
from embedkit.train.data import load_training_data
from embedkit.train.dense import column_prompts
from embedkit.train.evaluators import sparse_evaluator
from embedkit.train.kind import TrainingKind
from embedkit.train.losses import DISTILLATION

STATIC_LEARNING_RATE = 1e-3  # inference-free query weights: sentence-transformers' recommended rate for them


class _TeacherRows:
    """Resolves (query_id, document_ids, scores) rows into (query, document_1..n, scores) when read, the columns
    ``SparseDistillKLDivLoss`` reads (scores are the label)."""

    @staticmethod
    def distillation_rows(train: Any, queries: Any, documents: Any, n_ways: int) -> Any:
        from sentence_transformers.util import resolve_ids

        train.set_transform(resolve_ids({"query_id": (queries, "query_id", "text"),
                                         "document_ids": (documents, "document_id", "text")},
                                        keep_columns=["scores"], max_list_length=n_ways))
        return train


def _has_router(model: Any) -> bool:
    from sentence_transformers.sparse_encoder.modules import Router

    return any(isinstance(module, Router) for module in model.children())


class SparseTraining(TrainingKind):
    """sentence-transformers' SparseEncoder: built per ``sparse.architecture`` from an MLM checkpoint, or a saved
    sparse model as it is."""

    evaluator = staticmethod(sparse_evaluator)

    def build_model(self, recipe: Recipe) -> Any:
        from embedkit.models.sparse import build_sparse_model

        return build_sparse_model(recipe.model, recipe.sparse)

    def training_data(self, recipe: Recipe) -> Any:
        if recipe.data.format == DISTILLATION:
            return load_distillation_data(recipe.data, _TeacherRows())
        return load_training_data(recipe.data)

    def arguments(self, recipe: Recipe, train_data: Any, model: Any) -> dict[str, Any]:
        if recipe.data.format == DISTILLATION:
            columns = ["query", *(f"document_{i}" for i in range(1, N_WAYS + 1))]
        else:
            first = train_data if not hasattr(train_data, "keys") else next(iter(train_data.values()))
            columns = list(first.column_names)
        extra: dict[str, Any] = {}
        prompts = column_prompts(recipe, columns)
        if prompts:
            extra["prompts"] = prompts
        if _has_router(model):  # inference-free: which route each column takes
            extra["router_mapping"] = {c: "query" if c == "query" else "document" for c in columns}
            extra["learning_rate_mapping"] = {r"sub_modules\.query\.0\.weight": STATIC_LEARNING_RATE}
        return extra

    def trainer_classes(self, model: Any) -> tuple[type, type]:
        from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments

        return SparseEncoderTrainer, SparseEncoderTrainingArguments

