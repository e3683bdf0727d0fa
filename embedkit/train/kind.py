"""What differs between the kinds of training, behind one interface (``TrainingKind``); the driver
(:mod:`embedkit.train.run`) chooses a kind in its ``KINDS`` registry. A kind subclasses ``TrainingKind`` and keeps
the defaults of the extras it does not need."""

from __future__ import annotations

from typing import Any, Protocol

from embedkit.config import Recipe
from embedkit.train.evaluators import EvaluatorFactory


class TrainingKind(Protocol):
    """The kind-specific parts of training (every kind trains on a sentence-transformers trainer: its own for
    dense and sentence-transformers ColBERT models, ``SentenceTransformerTrainer`` for PyLate's)."""

    evaluator: EvaluatorFactory  # builds the during-training evaluator from a small BEIR folder

    def build_model(self, recipe: Recipe) -> Any: ...

    def training_data(self, recipe: Recipe) -> Any: ...

    def arguments(self, recipe: Recipe, train_data: Any, model: Any) -> dict[str, Any]:
        """Extra training arguments (prompts, batch sampler)."""

    def trainer_classes(self, model: Any) -> tuple[type, type]:
        """(trainer, training arguments) classes for ``model``."""

    def trainer_arguments(self, model: Any) -> dict[str, Any]:
        """Extra trainer keyword arguments (a data collator); none by default."""
        return {}

    def manifest(self, model: Any) -> dict[str, Any]:
        """What the model folder's manifest records beyond the recipe (the ColBERT library and its version); nothing
        by default."""
        return {}

    def padded_fallback(self, model: Any) -> int:
        """The longest padded batch that keeps HF's padded forward when the packed one is swapped in (a ColBERT
        library's expanded queries; see ``enable_packed``). 0 by default: pooling ignores every masked position, so the
        packed forward serves every batch."""
        return 0
