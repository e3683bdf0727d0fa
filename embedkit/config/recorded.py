"""What an artefact records of the settings that made it, and how two sets of settings differ: the encoding and
index settings an index or result is keyed by, the part of a recipe that decides the trained model."""

from __future__ import annotations

import dataclasses
from typing import Any

from embedkit.config.fields import default_of
from embedkit.config.reference import yaml_value
from embedkit.config.schema import Recipe

# EncodeSettings fields that choose how vectors are computed, never which (the packed forward is checked against
# HF's): no index manifest, evaluation cache or results key records them, so they never make an artefact stale.
NOT_RECORDED = ("packed", "model_backend")
# IndexSettings fields added after indexes, results and cached indexes were first keyed: recorded only where they
# differ from their defaults, so that an artefact keyed before they existed keeps its key (and stays current).
RECORDED_WHEN_SET = ("quantization", "rescore_multiplier", "shortlist_dim", "qdrant", "seismic",
                     "auto_sparse_exact_max_documents")


def recorded_settings(settings: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """``asdict(settings)`` without the fields in ``skip`` and without RECORDED_WHEN_SET fields at their defaults."""
    defaults = {f.name: default_of(f) for f in dataclasses.fields(settings) if f.name in RECORDED_WHEN_SET}
    defaults = {k: _plain(v) for k, v in defaults.items()}
    return {key: value for key, value in dataclasses.asdict(settings).items()
            if key not in skip and not (key in defaults and value == defaults[key])}


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


# Recipe sections training does not read (evaluation after training is the eval stage's job); of eval:,
# only eval.during_training and, when it is set, the split and batch size it is scored with.
_NOT_TRAINING = ("output_dir", "index", "report")
_TRAINING_EVAL_KEYS = ("during_training", "split", "batch_size")


def training_settings(recipe: Recipe | dict[str, Any]) -> dict[str, Any]:
    """The part of a recipe (or of a saved recipe's dict) that decides the trained model: two recipes with
    equal training settings train the same model, whatever their index, eval and report sections say."""
    raw = recipe.to_dict() if isinstance(recipe, Recipe) else _old_packed_keys(dict(recipe))
    kept = {key: value for key, value in raw.items() if key not in _NOT_TRAINING and key != "eval"}
    evaluation = raw.get("eval") or {}
    during = evaluation.get("during_training")  # split and batch size count only when something is scored
    kept["eval"] = {key: evaluation.get(key) for key in _TRAINING_EVAL_KEYS} if during else {"during_training": None}
    return kept


def _old_packed_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved recipe's dict with the packed forward's older keys (``model.unpadded``, then ``training.unpadded``)
    read as the ``training.packed`` it now is (so an unchanged recipe still finds its model trained)."""
    model, training = raw.get("model"), raw.get("training")
    if not isinstance(training, dict):
        return raw
    training = dict(training)
    if "unpadded" in training:
        training.setdefault("packed", training.pop("unpadded"))
    if isinstance(model, dict) and "unpadded" in model:
        model = dict(model)
        training.setdefault("packed", model.pop("unpadded"))
        raw = {**raw, "model": model}
    return {**raw, "training": training}


def setting_differences(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two recipe dicts.

    >>> setting_differences({"training": {"learning_rate": 1e-4}}, {"training": {"learning_rate": 5e-5}})
    ['training.learning_rate: 0.0001 -> 5.0e-05']
    """
    changes = []
    for key in sorted(set(before) | set(after), key=lambda k: (k not in before, str(k))):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += setting_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key}: {yaml_value(old)} -> {yaml_value(new)}")
    return changes
