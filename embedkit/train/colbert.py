"""The ColBERT (multi-vector) parts of training: model, trainer, collator and prompts, and the distillation data
layout (queries / documents / train with teacher scores), each from the ColBERT library the recipe's
``colbert.library`` picks (embedkit.models.colbert). The driver (embedkit.train.run) does the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedkit.config import DataConfig, Recipe
from embedkit.errors import EmbedkitError
from embedkit.train.data import _local_files, load_training_data, read_source
from embedkit.train.evaluators import colbert_evaluator
from embedkit.train.kind import TrainingKind
from embedkit.train.losses import DISTILLATION

KD_SUBSETS = ("queries", "documents", "train")  # the layout of lightonai/ms-marco-en-bge
KD_COLUMNS = {"queries": ("query_id", "text"), "documents": ("document_id", "text"),
              "train": ("query_id", "document_ids", "scores")}
N_WAYS = 32  # documents per query kept from the teacher's list, first as stored (PyLate's KDProcessing default)


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


def load_distillation_data(cfg: DataConfig, library: Any) -> Any:
    """Rows (query_id, document_ids, scores) resolved lazily by ``library`` into its distillation rows."""
    if not cfg.train:
        raise EmbedkitError("data.train: no training data given")
    if cfg.mix:
        raise EmbedkitError("data.mix: mixing sources is not supported for distillation data")
    queries, documents, train = (_kd_part(cfg, s) for s in KD_SUBSETS)
    if cfg.max_samples is not None:
        train = train.select(range(min(cfg.max_samples, len(train))))
    train = train.select_columns(list(KD_COLUMNS["train"]))
    return library.distillation_rows(train, queries, documents, N_WAYS)


def _columns(recipe: Recipe, train_data: Any) -> list[str]:
    """The columns batches hold: distillation rows are resolved when read (query, document_1..n); pairs as
    loaded (a mix: its sources' union)."""
    if recipe.data.format == DISTILLATION:
        return ["query", *(f"document_{i}" for i in range(1, N_WAYS + 1))]
    parts = train_data.values() if hasattr(train_data, "keys") else [train_data]
    return list(dict.fromkeys(c for part in parts for c in part.column_names))


# --------------------------------------------------------------------------- the kind's parts of training

class ColbertTraining(TrainingKind):
    """A ColBERT of the recipe's library: backbone + a seeded projection (or a ColBERT checkpoint as is), the
    library's trainer, collator and markers, pairs or distillation rows. Both libraries train on a
    sentence-transformers trainer, so one driver serves every kind."""

    evaluator = staticmethod(colbert_evaluator)

    def build_model(self, recipe: Recipe) -> Any:
        from embedkit.models.colbert import build_colbert_model

        return build_colbert_model(recipe.model, recipe.colbert)

    def training_data(self, recipe: Recipe) -> Any:
        if recipe.data.format == DISTILLATION:
            from embedkit.models.colbert import get_library

            return load_distillation_data(recipe.data, get_library(recipe.colbert.library))
        return load_training_data(recipe.data)

    def arguments(self, recipe: Recipe, train_data: Any, model: Any) -> dict[str, Any]:
        from embedkit.models.colbert import library_of

        return library_of(model).training_arguments(model, _columns(recipe, train_data),
                                                    distillation=recipe.data.format == DISTILLATION)

    def trainer_classes(self, model: Any) -> tuple[type, type]:
        from embedkit.models.colbert import library_of

        return library_of(model).trainer_classes()

    def trainer_arguments(self, model: Any) -> dict[str, Any]:
        from embedkit.models.colbert import library_of

        return library_of(model).trainer_arguments(model)

    def manifest(self, model: Any) -> dict[str, Any]:
        """The library (and version) that trained the model, for the model folder's manifest."""
        from embedkit.models.colbert import library_of
        from embedkit.models.colbert.registry import manifest_entry

        return manifest_entry(library_of(model))

    def padded_fallback(self, model: Any) -> int:
        """Queries expanded with [MASK] tokens that are scored but not attended to keep HF's padded forward: the
        model's library says up to which length."""
        from embedkit.models.colbert import library_of

        return library_of(model).padded_query_length(model)
