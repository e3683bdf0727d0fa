"""The one training driver, for every kind: data → loss → trainer → save on rank 0 → model card, in an
output folder that is published when complete and resumed from its checkpoints when a run was killed.

What differs between kinds (model, data, evaluator, trainer extras) sits behind ``TrainingKind``; the
kinds are chosen in ``KINDS`` and nothing else here branches on the kind.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedkit.artifacts import check_apart, check_replaceable, partial_path, publish_dir, versions, write_json
from embedkit.config import Recipe
from embedkit.distributed import barrier, world
from embedkit.errors import EmbedkitError
from embedkit.train.arguments import last_checkpoint, tensorboard_logging, training_arguments
from embedkit.train.colbert import ColbertTraining
from embedkit.train.dense import DenseTraining
from embedkit.train.evaluators import during_training_evaluator
from embedkit.train.kind import TrainingKind
from embedkit.train.losses import build_loss
from embedkit.train.sparse import SparseTraining

logger = logging.getLogger(__name__)

MANIFEST = "embedkit.json"


KINDS: dict[str, TrainingKind] = {"dense": DenseTraining(), "colbert": ColbertTraining(), "sparse": SparseTraining()}


def _progress_callback() -> Any:
    """The trainer's console output, on stderr: one progress bar of updates with the last logged loss, and the
    log dicts as debug lines (``-v``). It replaces transformers' ProgressCallback, whose ``tqdm.write`` put
    every log dict on stdout, among the results."""
    from transformers import TrainerCallback

    from embedkit.quiet import progress_bar

    class TrainingProgress(TrainerCallback):
        bar: Any = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = progress_bar(total=state.max_steps, initial=state.global_step, unit="step", desc="training",
                                dynamic_ncols=True, disable=not logger.isEnabledFor(logging.INFO))

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            logger.debug("step %d: %s", state.global_step, {k: v for k, v in logs.items() if k != "total_flos"})
            if self.bar is not None and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return TrainingProgress()


def _quiet_trainer(trainer: Any) -> None:
    """Swap transformers' progress and printer callbacks (both print log dicts on stdout) for embedkit's."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    trainer.add_callback(_progress_callback())


@contextlib.contextmanager
def _no_widget_bar() -> Iterator[None]:
    """sentence-transformers computes model-card widget examples when the trainer is built, under a progress
    bar of its own ("Computing widget examples"); hidden unless ``-v``."""
    import importlib

    model_card = None
    for name in ("sentence_transformers.base.model_card", "sentence_transformers.model_card"):  # ST 6, ST 5
        try:
            model_card = importlib.import_module(name)
            break
        except ImportError:
            continue
    real = getattr(model_card, "tqdm", None)
    if real is None or logger.isEnabledFor(logging.DEBUG):
        yield
        return
    model_card.tqdm = functools.partial(real, disable=True)
    try:
        yield
    finally:
        model_card.tqdm = real


def fit(recipe: Recipe, work: Path) -> tuple[Any, list[dict]]:
    """Train per ``recipe`` with checkpoints under ``work/checkpoints`` (resumed from the last one when
    ``training.resume``); rank 0 saves the model into ``work``. Returns the model and the trainer's log."""
    kind = KINDS[recipe.kind]
    train_data = kind.training_data(recipe)  # before the model loads: a data error costs no model load
    model = kind.build_model(recipe)
    if recipe.training.packed != "off":
        from embedkit.models.packed import enable_packed

        enable_packed(model, mode=recipe.training.packed, padded_fallback=kind.padded_fallback(model))
    checkpoints = work / "checkpoints"
    evaluator = during_training_evaluator(recipe, kind.evaluator)
    trainer_class, arguments_class = kind.trainer_classes(model)
    args = training_arguments(recipe, checkpoints, best_metric=evaluator.primary_metric if evaluator else None,
                              arguments_class=arguments_class, **kind.arguments(recipe, train_data, model))
    with tensorboard_logging(checkpoints), _no_widget_bar():
        trainer = trainer_class(model=model, args=args, train_dataset=train_data,
                                loss=build_loss(model, recipe.loss, world()[1], recipe), evaluator=evaluator,
                                **kind.trainer_arguments(model))
    _quiet_trainer(trainer)
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
                                                        packed=recipe.eval.packed, retrieve=recipe.eval.retrieve,
                                                        colbert_library=recipe.colbert.library))
        metrics[data] = {k: result[k] for k in ("ndcg@10", "recall@100", "mrr@10", "map@100")}
        logger.info("%s: nDCG@10 %.4f", data, metrics[data]["ndcg@10"])
    return metrics


def train(recipe: Recipe, overwrite: bool = False, keep_checkpoints: bool = False) -> Path:
    """Train per ``recipe`` and publish the model folder at ``recipe.output_dir``.

    Everything is written in ``<output_dir>.partial`` and renamed when done; a killed run leaves
    its checkpoints there, and the same command resumes from the last one.
    """
    final = Path(recipe.output_dir)
    check_apart(final, "output_dir", [("data.train", recipe.data.train), ("model.name", recipe.model.name),
                                      ("eval.during_training", recipe.eval.during_training),
                                      *((f"data.mix[{i}].train", s.train) for i, s in enumerate(recipe.data.mix))])
    if final.exists() or final.is_symlink():
        check_replaceable(final, MANIFEST, "a model")
        if not overwrite:
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
    fresh = not work.exists()
    if rank != 0:
        # torchrun: every rank trains (the trainer joins the process group); rank 0 alone writes and publishes.
        work.mkdir(parents=True, exist_ok=True)
        fit(recipe, work)
        barrier()
        return final
    try:
        with publish_dir(final, overwrite=overwrite, manifest=MANIFEST, what="a model") as work:
            (work / "recipe.yaml").write_text(recipe.to_yaml(), encoding="utf-8")
            model, history = fit(recipe, work)
            _finish(recipe, work, final, history, start, keep_checkpoints, KINDS[recipe.kind].manifest(model))
    except EmbedkitError:
        if fresh and not last_checkpoint(work / "checkpoints"):  # a user error before any checkpoint: nothing
            shutil.rmtree(work, ignore_errors=True)             # to resume, so leave no .partial folder behind
        raise
    barrier()  # under torchrun the other ranks return once the folder is published
    return final


def _finish(recipe: Recipe, work: Path, final: Path, history: list[dict], start: float,
            keep_checkpoints: bool, model_manifest: dict[str, Any]) -> None:
    """Write the training log, the scores, the model card and the manifest (with ``model_manifest``, what the
    kind records of its model) into the work folder."""
    write_json(work / "train_log.json", history)
    metrics = evaluate_model(recipe, work) if recipe.eval.data else {}
    write_json(work / "metrics.json", metrics)
    card = work / "README.md"
    existing = card.read_text(encoding="utf-8") if card.exists() else f"# {final.name}\n"
    card.write_text(existing + _card_section(recipe, metrics, history), encoding="utf-8")
    write_json(work / MANIFEST, {"kind": recipe.kind, "recipe": recipe.to_dict(), "metrics": metrics,
                                 "train_seconds": round(time.time() - start, 1), "versions": versions(),
                                 **model_manifest})
    if not keep_checkpoints:
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
