"""The one training driver, for every kind: data → loss → trainer → save on rank 0 → model card, in an
output folder that is published when complete and resumed from its checkpoints when a run was killed.

What differs between kinds (model, data, evaluator, trainer extras) sits behind ``TrainingKind``; the
kinds are chosen in ``KINDS`` and nothing else here branches on the kind.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from embedkit.artifacts import partial_path, publish_dir, versions, write_json
from embedkit.config import Recipe
from embedkit.distributed import barrier, world
from embedkit.errors import EmbedkitError
from embedkit.train.arguments import last_checkpoint, tensorboard_logging, training_arguments
from embedkit.train.colbert import ColbertTraining
from embedkit.train.dense import DenseTraining
from embedkit.train.evaluators import EvaluatorFactory, during_training_evaluator
from embedkit.train.losses import build_loss

logger = logging.getLogger(__name__)

MANIFEST = "embedkit.json"


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
        """Extra trainer keyword arguments (a data collator)."""

    def manifest(self, model: Any) -> dict[str, Any]:
        """What the model folder's manifest records beyond the recipe (the ColBERT library and its version)."""


KINDS: dict[str, TrainingKind] = {"dense": DenseTraining(), "colbert": ColbertTraining()}


def fit(recipe: Recipe, work: Path) -> tuple[Any, list[dict]]:
    """Train per ``recipe`` with checkpoints under ``work/checkpoints`` (resumed from the last one when
    ``training.resume``); rank 0 saves the model into ``work``. Returns the model and the trainer's log."""
    kind = KINDS[recipe.kind]
    model = kind.build_model(recipe)
    if recipe.model.unpadded != "off":
        from embedkit.models.modernbert_unpadded import enable_unpadded

        enable_unpadded(model, mode=recipe.model.unpadded)
    train_data = kind.training_data(recipe)
    checkpoints = work / "checkpoints"
    evaluator = during_training_evaluator(recipe, kind.evaluator)
    trainer_class, arguments_class = kind.trainer_classes(model)
    args = training_arguments(recipe, checkpoints, best_metric=evaluator.primary_metric if evaluator else None,
                              arguments_class=arguments_class, **kind.arguments(recipe, train_data, model))
    with tensorboard_logging(checkpoints):
        trainer = trainer_class(model=model, args=args, train_dataset=train_data,
                                loss=build_loss(model, recipe.loss, world()[1]), evaluator=evaluator,
                                **kind.trainer_arguments(model))
    resume = last_checkpoint(checkpoints) if recipe.training.resume else None
    if resume:
        logger.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():  # under torchrun every rank holds the same weights; one writes them
        model.save(str(work))
    return model, trainer.state.log_history


def _losses(history: list[dict]) -> list[float]:
    return [float(h["loss"]) for h in history if "loss" in h]


def _card_section(recipe: Recipe, metrics: dict[str, dict], history: list[dict]) -> str:
    lines = ["", "## Trained with embedkit", "", f"Kind: `{recipe.kind}`. Recipe (resolved):", "", "```yaml",
             recipe.to_yaml().rstrip(), "```", ""]
    losses = _losses(history)
    if losses:
        lines += [f"Training loss: first logged {losses[0]:.4f}, last logged {losses[-1]:.4f}.", ""]
    if metrics:
        lines += ["| data | nDCG@10 | Recall@100 | MRR@10 | MAP@100 |", "|---|---|---|---|---|"]
        for name, m in metrics.items():
            lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | {m['mrr@10']:.4f} | "
                         f"{m['map@100']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def evaluate_model(recipe: Recipe, folder: Path) -> dict[str, dict]:
    """Score the trained model on each ``eval.data`` folder (no index cache: the model is new)."""
    from embedkit.evaluate.runner import EvalOptions, evaluate

    metrics = {}
    for data in recipe.eval.data:
        result = evaluate(str(folder), data, EvalOptions(kind=recipe.kind, split=recipe.eval.split,
                                                        batch_size=recipe.eval.batch_size, use_cache=False,
                                                        retrieve=recipe.eval.retrieve),
                          colbert_library=recipe.colbert.library)
        metrics[data] = {k: result[k] for k in ("ndcg@10", "recall@100", "mrr@10", "map@100")}
        logger.info("%s: nDCG@10 %.4f", data, metrics[data]["ndcg@10"])
    return metrics


def train(recipe: Recipe, overwrite: bool = False, keep_checkpoints: bool = False) -> Path:
    """Train per ``recipe`` and publish the model folder at ``recipe.output_dir``.

    Everything is written in ``<output_dir>.partial`` and renamed when done; a killed run leaves
    its checkpoints there, and the same command resumes from the last one.
    """
    final = Path(recipe.output_dir)
    if final.exists() and not overwrite:
        raise EmbedkitError(f"output_dir {final} already holds a model; pass --overwrite to replace it")
    work = partial_path(final)
    rank = world()[0]
    previous = work / "recipe.yaml"
    if work.exists() and previous.is_file() and previous.read_text(encoding="utf-8") != recipe.to_yaml():
        if not overwrite:
            raise EmbedkitError(f"{work} holds an interrupted run of a different recipe; pass --overwrite to discard it")
        if rank == 0:
            shutil.rmtree(work)
    start = time.time()
    if rank != 0:
        # torchrun: every rank trains (the trainer joins the process group); rank 0 alone writes and publishes.
        work.mkdir(parents=True, exist_ok=True)
        fit(recipe, work)
        barrier()
        return final
    with publish_dir(final, overwrite=overwrite) as work:
        (work / "recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
        model, history = fit(recipe, work)
        write_json(work / "train_log.json", history)
        metrics = evaluate_model(recipe, work) if recipe.eval.data else {}
        write_json(work / "metrics.json", metrics)
        card = work / "README.md"
        existing = card.read_text(encoding="utf-8") if card.exists() else f"# {final.name}\n"
        card.write_text(existing + _card_section(recipe, metrics, history), encoding="utf-8")
        write_json(work / MANIFEST, {"kind": recipe.kind, "recipe": recipe.to_dict(), "metrics": metrics,
                                     "train_seconds": round(time.time() - start, 1), "versions": versions(),
                                     **KINDS[recipe.kind].manifest(model)})
        if not keep_checkpoints:
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
    barrier()  # under torchrun the other ranks return once the folder is published
    return final
