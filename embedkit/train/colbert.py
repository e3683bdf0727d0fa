"""ColBERT (multi-vector) training with PyLate on the sentence-transformers trainer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedkit.config import DataConfig, LossConfig, Recipe
from embedkit.errors import EmbedkitError
from embedkit.train.arguments import last_checkpoint, tensorboard_logging, training_arguments
from embedkit.train.data import _local_files, read_source

logger = logging.getLogger(__name__)

KD_SUBSETS = ("queries", "documents", "train")  # the layout of lightonai/ms-marco-en-bge
KD_COLUMNS = {"queries": ("query_id", "text"), "documents": ("document_id", "text"),
              "train": ("query_id", "document_ids", "scores")}
N_WAYS = 32  # documents per query kept from the teacher's list (PyLate's KDProcessing default)


# --------------------------------------------------------------------------- losses by name

def _gather(cfg: LossConfig) -> bool:
    """Share negatives only across several processes (PyLate warns on every step otherwise), and never on
    gloo (CPU), which cannot back-propagate through the gather: the dense losses' rule."""
    import os

    from embedkit.train.losses import _gather as dense_gather

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and dense_gather(cfg)


def _contrastive(model: Any, cfg: LossConfig) -> Any:
    from pylate import losses

    return losses.Contrastive(model=model, gather_across_devices=_gather(cfg))


def _cached_contrastive(model: Any, cfg: LossConfig) -> Any:
    from pylate import losses

    class CachedContrastive(losses.CachedContrastive):
        """PyLate 1.6 back-propagates the *summed* per-row losses but returns their mean, so its gradients are
        batch_size times those of ``Contrastive`` on the same batch (tests/train/test_colbert.py checks this).
        Dividing the cached embedding gradients by the batch size makes the two losses equivalent."""

        def calculate_loss_and_cache_gradients(self, reps, masks):
            loss = super().calculate_loss_and_cache_gradients(reps, masks)
            if self.size_average:
                rows = sum(r.shape[0] for r in reps[0])  # anchors in the whole batch
                self.cache = [[None if g is None else g / rows for g in grads] for grads in self.cache]
            return loss

    return CachedContrastive(model=model, mini_batch_size=cfg.mini_batch_size, gather_across_devices=_gather(cfg))


def _distillation(model: Any, cfg: LossConfig) -> Any:
    from pylate import losses

    return losses.Distillation(model=model)  # KL(teacher || student) over each query's scored documents


COLBERT_LOSSES: dict[str, Callable[[Any, LossConfig], Any]] = {
    "contrastive": _contrastive, "cached_contrastive": _cached_contrastive, "distillation": _distillation}


# --------------------------------------------------------------------------- distillation data

def _kd_part(cfg: DataConfig, subset: str):
    source = cfg.train
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EmbedkitError(f"{source}: distillation data is a folder with queries, documents and train files")
        files = [f for f in _local_files(path) if f.stem.split(".")[0] == subset]
        if not files:
            raise EmbedkitError(f"{source}: no {subset}.jsonl/.parquet file (distillation data needs "
                                f"{', '.join(KD_SUBSETS)})")
        data = read_source(str(files[0]), None, cfg.split)
    else:
        data = read_source(source, subset, cfg.split)
    missing = [c for c in KD_COLUMNS[subset] if c not in data.column_names]
    if missing:
        raise EmbedkitError(f"{source} ({subset}): missing column(s) {', '.join(missing)}; found "
                            f"{', '.join(data.column_names)}")
    return data


def load_distillation_data(cfg: DataConfig, seed: int) -> Any:
    """Rows (query_id, document_ids, scores) resolved lazily into (query, documents, scores) by PyLate."""
    from pylate import utils

    if not cfg.train:
        raise EmbedkitError("data.train: no training data given")
    if cfg.mix:
        raise EmbedkitError("data.mix: mixing sources is not supported for distillation data")
    queries, documents, train = (_kd_part(cfg, s) for s in KD_SUBSETS)
    if cfg.max_samples is not None:
        train = train.select(range(min(cfg.max_samples, len(train))))
    train = train.select_columns(list(KD_COLUMNS["train"]))
    train.set_transform(utils.KDProcessing(queries=queries, documents=documents, n_ways=N_WAYS).transform)
    return train


def load_colbert_training_data(recipe: Recipe) -> Any:
    if recipe.data.format == "distillation":
        return load_distillation_data(recipe.data, recipe.training.seed)
    from embedkit.train.data import load_training_data

    return load_training_data(recipe.data, recipe.training.seed)


# --------------------------------------------------------------------------- evaluation and training

def colbert_evaluator(recipe: Recipe, queries: dict[str, str], corpus: dict[str, str],
                      relevant: dict[str, set[str]]) -> Any:
    """PyLate's IR evaluator (exact MaxSim over the whole small corpus); primary metric maxsim_ndcg@10."""
    from pylate.evaluation import PyLateInformationRetrievalEvaluator
    from pylate.scores import colbert_scores

    evaluator = PyLateInformationRetrievalEvaluator(
        queries=queries, corpus=corpus, relevant_docs=relevant, name="", ndcg_at_k=[10], mrr_at_k=[10],
        accuracy_at_k=[1, 10], precision_recall_at_k=[10, 100], map_at_k=[100],
        score_functions={"maxsim": colbert_scores},
        batch_size=recipe.eval.batch_size, show_progress_bar=False)
    evaluator.primary_metric = "maxsim_ndcg@10"
    return evaluator


def train_colbert(recipe: Recipe, work: Path) -> tuple[Any, list[dict]]:
    """Train a PyLate ColBERT per ``recipe`` and save it into ``work`` (loads with ``ColBERT(work)``)."""
    from pylate import utils
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.training_args import BatchSamplers

    from embedkit.models.colbert import build_colbert_model
    from embedkit.train.evaluators import during_training_evaluator

    model = build_colbert_model(recipe.model, recipe.colbert)
    if recipe.model.unpadded != "off":
        from embedkit.models.modernbert_unpadded import enable_unpadded

        enable_unpadded(model, mode=recipe.model.unpadded)
    train_data = load_colbert_training_data(recipe)
    checkpoints = work / "checkpoints"
    evaluator = during_training_evaluator(recipe, "colbert")
    extra = {}
    if recipe.data.format == "distillation":
        # Rows hold lists of documents: the no-duplicates sampler cannot hash them (and KD rows are unique).
        extra["batch_sampler"] = BatchSamplers.BATCH_SAMPLER
        extra["remove_unused_columns"] = False
    args = training_arguments(recipe, checkpoints,
                              best_metric=evaluator.primary_metric if evaluator is not None else None, **extra)
    with tensorboard_logging(checkpoints):
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_data,
                                             loss=COLBERT_LOSSES[recipe.loss.name](model, recipe.loss),
                                             evaluator=evaluator,
                                             data_collator=utils.ColBERTCollator(tokenize_fn=model.tokenize))
    resume = last_checkpoint(checkpoints) if recipe.training.resume else None
    if resume:
        logger.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    model.save(str(work))
    return model, trainer.state.log_history


# --------------------------------------------------------------------------- quickstart

def quickstart_rows(workdir: Path, train_path: Path, data_folder: Path, max_steps: int | None) -> list:
    """ColBERT rows of the quickstart table: the packaged MiniLM with an untrained projection, then fine-tuned."""
    import time

    from embedkit.config import load_recipe
    from embedkit.evaluate.runner import EvalOptions, evaluate
    from embedkit.quickstart import RECIPE, Row, _train, packaged_minilm

    recipe = RECIPE.with_name("quickstart-colbert.yaml")
    length = load_recipe(recipe).colbert.document_length  # the base row reads documents as far as the tuned one
    base = packaged_minilm()
    overrides = [f"model.name={base}", f"data.train={train_path}", f"output_dir={workdir / 'minilm-colbert-code'}"]
    if max_steps:
        overrides.append(f"training.max_steps={max_steps}")
    rows = []
    start = time.perf_counter()
    result = evaluate(base, data_folder, EvalOptions(kind="colbert", use_cache=False, max_length=length))
    rows.append(Row("MiniLM base (ColBERT, untrained projection)", result["ndcg@10"], result["recall@100"],
                    time.perf_counter() - start))
    tuned, train_seconds = _train(recipe, overrides)
    start = time.perf_counter()
    result = evaluate(tuned, data_folder, EvalOptions(kind="colbert", use_cache=False))
    rows.append(Row("MiniLM fine-tuned (ColBERT, PLAID)", result["ndcg@10"], result["recall@100"],
                    time.perf_counter() - start + train_seconds))
    return rows
