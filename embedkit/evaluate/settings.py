"""What a score depends on, and what a scored model is called.

Every results JSON records :func:`run_settings` (the model's fingerprint and every setting that shapes a
number: split, k, lengths, protocol, document text, backend options, fusion and reranking) and their
:func:`~embedkit.artifacts.settings_key`: equal keys, equal scores, so a run that finds a result with the same
key skips it (:func:`results_currency`).
Models are named in results and reports by :func:`model_name`, never by an absolute path.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from embedkit.artifacts import Currency, model_fingerprint, recorded_differences, settings_key
from embedkit.config import NOT_RECORDED, EvalOptions, IndexSettings, narrow, recorded_settings
from embedkit.index.registry import NO_MODEL

# EvalOptions fields that change scores; batch size, cache use and per-query output do not.
SCORED_OPTIONS = ("kind", "split", "k", "max_length", "truncate_dim", "long_documents", "protocol", "retrieve")
# IndexSettings fields that do not change scores (speed, disk), or that the options above set.
_UNSCORED_INDEX = ("batch_size", "shard_size", "keep_shards", "max_length", "truncate_dim", *NOT_RECORDED)
# Folder names that say nothing about the model inside them.
_GENERIC_NAMES = {"model", "models", "final", "best", "output", "outputs", "checkpoint", "snapshot"}


def run_settings(model: str, options: EvalOptions, labels: dict[str, Any] | None = None,
                 index: IndexSettings | None = None, document_text: str = "title+text") -> dict[str, Any]:
    """The model's fingerprint and every setting that changes a score (the index backend and its options
    too): equal settings, equal scores. The precision recorded with the backend is the one evaluation encodes
    with, ``options.precision`` (``index``'s own is the index stage's)."""
    fingerprint = NO_MODEL if model == NO_MODEL else model_fingerprint(model)
    scored = {key: value for key, value in asdict(options).items() if key in SCORED_OPTIONS}
    built = replace(narrow(IndexSettings, index or IndexSettings()), precision=options.precision)
    backend = recorded_settings(built, skip=_UNSCORED_INDEX)
    return {"model_fingerprint": fingerprint, **scored, "document_text": document_text, "index": backend,
            **(labels or {})}


def model_name(model: str) -> str:
    """What a model is called in tables and charts: ``bm25``; a hub id as given; a local folder by its name
    (an embedkit-trained model's folder is its run's name), or, when the folder name says nothing (``model``,
    ``checkpoint-500``), by the title of its model card or its parent folder.

    >>> model_name("bm25"), model_name("answerdotai/ModernBERT-base"), model_name("/nonexistent/runs/minilm")
    ('bm25', 'answerdotai/ModernBERT-base', 'minilm')
    """
    path = Path(model).expanduser()
    if not path.is_dir():
        return model if not path.is_absolute() else path.name
    name = path.resolve().name
    if (path / "embedkit.json").is_file() or not _is_generic(name):
        return name
    return _card_title(path) or f"{path.resolve().parent.name}/{name}"


def _is_generic(name: str) -> bool:
    return name.lower() in _GENERIC_NAMES or bool(re.fullmatch(r"(checkpoint|step|epoch)[-_]?\d+", name.lower()))


def _card_title(folder: Path) -> str | None:
    """The first ``# Title`` of the folder's README.md (after its YAML front matter), if it is a short name."""
    card = folder / "README.md"
    if not card.is_file():
        return None
    with open(card, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f):
            if number > 200:
                break
            if line.startswith("# "):
                title = line[2:].strip()
                return title if 0 < len(title) <= 60 and " " not in title else None
    return None


def model_label(model: str) -> str:
    """The model's name made safe for a folder name (the results of one model sit in one folder)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model_name(model)).name or model)


def results_path(output_dir: str | Path, model: str, dataset: str) -> Path:
    return Path(output_dir) / model_label(model) / (dataset.replace("/", "__") + ".json")


def results_currency(path: str | Path, settings: dict[str, Any], corpus_fingerprint: str | None = None) -> Currency:
    """Whether ``path`` holds the results of a run with ``settings`` (:func:`run_settings`): absent (no file),
    current (the same settings key and, when ``corpus_fingerprint`` is given, the same documents scored), or the
    differences, each setting as ``key: recorded -> wanted``. A file that is not a results JSON differs by that."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        return Currency(where, None)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict) or "dataset" not in saved or "settings_key" not in saved:
        return Currency(where, ("no dataset or settings_key recorded",), "holds something else than results")
    changes: list[str] = []
    if saved["settings_key"] != settings_key(settings):
        recorded = saved.get("settings")
        changes += recorded_differences(recorded, settings) if isinstance(recorded, dict) else ()
        changes = changes or [f"settings_key: {saved['settings_key']} -> {settings_key(settings)}"]
    if corpus_fingerprint is not None and saved.get("corpus_fingerprint") != corpus_fingerprint:
        changes.append(f"documents: {saved.get('corpus_fingerprint')} -> {corpus_fingerprint}")
    return Currency(where, tuple(changes), "holds results of other settings (or of another model)",
                    "pass --overwrite to score again")
