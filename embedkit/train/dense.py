"""Dense (DPR-style) training with sentence-transformers' trainer and losses."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from embedkit.config import Recipe
from embedkit.train.arguments import last_checkpoint, tensorboard_logging, training_arguments
from embedkit.train.data import load_training_data
from embedkit.train.evaluators import during_training_evaluator
from embedkit.train.losses import build_dense_loss

logger = logging.getLogger(__name__)


def column_prompts(recipe: Recipe, columns: list[str]) -> dict[str, str]:
    """Query prompt on the query column, document prompt on positive and negative columns."""
    m = recipe.model
    if not (m.query_prompt or m.document_prompt):
        return {}
    return {c: (m.query_prompt if c == "query" else m.document_prompt) for c in columns}


def train_dense(recipe: Recipe, work: Path) -> tuple[Any, list[dict]]:
    """Train and save the model into ``work``; return it with the trainer's log history."""
    from sentence_transformers import SentenceTransformerTrainer

    from embedkit.models.dense import build_dense_model

    model = build_dense_model(recipe.model)
    if recipe.model.unpadded != "off":
        from embedkit.models.modernbert_unpadded import enable_unpadded

        enable_unpadded(model, mode=recipe.model.unpadded)
    train_data = load_training_data(recipe.data, recipe.training.seed)
    first = train_data if not hasattr(train_data, "keys") else next(iter(train_data.values()))
    checkpoints = work / "checkpoints"
    evaluator = during_training_evaluator(recipe, "dense")
    args = training_arguments(recipe, checkpoints, prompts=column_prompts(recipe, first.column_names),
                              best_metric=evaluator.primary_metric if evaluator is not None else None)
    with tensorboard_logging(checkpoints):
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_data,
                                             loss=build_dense_loss(model, recipe.loss), evaluator=evaluator)
    resume = last_checkpoint(checkpoints) if recipe.training.resume else None
    if resume:
        logger.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():  # under torchrun every rank holds the same weights; one writes them
        model.save(str(work))
    return model, trainer.state.log_history
