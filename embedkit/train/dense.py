"""The dense (DPR-style) parts of training: a sentence-transformers model, (query, positive, ...) rows, and
the recipe's prompts on those columns. The driver (embedkit.train.run) does the rest."""

from __future__ import annotations

from typing import Any

from embedkit.config import Recipe
from embedkit.train.data import load_training_data
from embedkit.train.evaluators import dense_evaluator
from embedkit.train.kind import TrainingKind


def column_prompts(recipe: Recipe, columns: list[str]) -> dict[str, str]:
    """Query prompt on the query column, document prompt on positive and negative columns."""
    m = recipe.model
    if not (m.query_prompt or m.document_prompt):
        return {}
    return {c: (m.query_prompt if c == "query" else m.document_prompt) for c in columns}


class DenseTraining(TrainingKind):
    """sentence-transformers: an existing model as is, or backbone + pooling per recipe."""

    evaluator = staticmethod(dense_evaluator)

    def build_model(self, recipe: Recipe) -> Any:
        from embedkit.models.dense import build_dense_model

        return build_dense_model(recipe.model)

    def training_data(self, recipe: Recipe) -> Any:
        return load_training_data(recipe.data)

    def arguments(self, recipe: Recipe, train_data: Any, model: Any) -> dict[str, Any]:
        first = train_data if not hasattr(train_data, "keys") else next(iter(train_data.values()))
        prompts = column_prompts(recipe, first.column_names)
        return {"prompts": prompts} if prompts else {}

    def trainer_classes(self, model: Any) -> tuple[type, type]:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

        return SentenceTransformerTrainer, SentenceTransformerTrainingArguments

