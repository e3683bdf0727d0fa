"""sentence-transformers training arguments from a recipe (every kind and ColBERT library trains on a
sentence-transformers trainer; the kind names the arguments class)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedkit.config import Recipe
from embedkit.distributed import world


def training_arguments(recipe: Recipe, checkpoints: Path, prompts: dict[str, str] | None = None,
                       best_metric: str | None = None, arguments_class: type | None = None, **extra: Any) -> Any:
    """``best_metric`` is the evaluator's primary metric; with it, the best checkpoint is kept.
    ``arguments_class``: default ``SentenceTransformerTrainingArguments``."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers, MultiDatasetBatchSamplers

    t = recipe.training
    bf16 = t.bf16 and (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    has_eval = best_metric is not None
    eval_steps = t.eval_steps or None
    args = dict(
        output_dir=str(checkpoints),
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=recipe.eval.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        warmup_ratio=t.warmup_ratio,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.scheduler,
        bf16=bf16,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=2,
        eval_strategy=("steps" if eval_steps else "epoch") if has_eval else "no",
        eval_steps=eval_steps,
        load_best_model_at_end=has_eval,
        metric_for_best_model=f"eval_{best_metric}" if has_eval else None,
        greater_is_better=True if has_eval else None,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=(MultiDatasetBatchSamplers.ROUND_ROBIN if recipe.data.sampling == "round_robin"
                                     else MultiDatasetBatchSamplers.PROPORTIONAL),
        dataloader_num_workers=t.dataloader_num_workers,
        report_to=["tensorboard"],
        prompts=prompts or None,
        disable_tqdm=False,
        # torchrun on a machine without CUDA: accelerate sets up CPU DDP (gloo) only when told to use the CPU;
        # otherwise every process would train alone, on all the data, with no gradient sync.
        use_cpu=not torch.cuda.is_available() and world()[1] > 1,
    )
    if int(transformers.__version__.split(".")[0]) < 5:
        args["logging_dir"] = str(tensorboard_dir(checkpoints))
    args.update(extra)
    return (arguments_class or SentenceTransformerTrainingArguments)(**args)


def tensorboard_dir(checkpoints: Path) -> Path:
    """TensorBoard logs go beside the model (``<output_dir>/logs``), not under checkpoints/, deleted at the end."""
    return checkpoints.parent / "logs"


@contextlib.contextmanager
def tensorboard_logging(checkpoints: Path) -> Iterator[None]:
    """Build the trainer inside this block: transformers 5 reads its TensorBoard folder from the process-wide
    ``TENSORBOARD_LOGGING_DIR`` when the trainer is built; the previous value is restored afterwards."""
    previous = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(checkpoints))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = previous


def last_checkpoint(checkpoints: Path) -> str | None:
    if not checkpoints.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(checkpoints))
