"""The ColBERT (multi-vector) parts of training with PyLate: model, collator, and the distillation data
layout (queries / documents / train with teacher scores). The driver (embedkit.train.run) does the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedkit.config import DataConfig, Recipe
from embedkit.errors import EmbedkitError
from embedkit.train.data import _local_files, load_training_data, read_source
from embedkit.train.evaluators import colbert_evaluator

KD_SUBSETS = ("queries", "documents", "train")  # the layout of lightonai/ms-marco-en-bge
KD_COLUMNS = {"queries": ("query_id", "text"), "documents": ("document_id", "text"),
              "train": ("query_id", "document_ids", "scores")}
N_WAYS = 32  # documents per query kept from the teacher's list (PyLate's KDProcessing default)


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


# --------------------------------------------------------------------------- the kind's parts of training

class ColbertTraining:
    """PyLate: backbone + a seeded projection (or a PyLate model as is), its collator, pairs or distillation
    rows. PyLate trains on the sentence-transformers trainer, so one driver serves both kinds."""

    evaluator = staticmethod(colbert_evaluator)

    def build_model(self, recipe: Recipe) -> Any:
        from embedkit.models.colbert import build_colbert_model

        return build_colbert_model(recipe.model, recipe.colbert)

    def training_data(self, recipe: Recipe) -> Any:
        if recipe.data.format == "distillation":
            return load_distillation_data(recipe.data, recipe.training.seed)
        return load_training_data(recipe.data, recipe.training.seed)

    def arguments(self, recipe: Recipe, train_data: Any) -> dict[str, Any]:
        if recipe.data.format != "distillation":
            return {}
        from sentence_transformers.training_args import BatchSamplers

        # Rows hold lists of documents: the no-duplicates sampler cannot hash them (and KD rows are unique).
        return {"batch_sampler": BatchSamplers.BATCH_SAMPLER, "remove_unused_columns": False}

    def trainer_arguments(self, model: Any) -> dict[str, Any]:
        from pylate import utils

        return {"data_collator": utils.ColBERTCollator(tokenize_fn=model.tokenize)}
