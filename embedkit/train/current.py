"""Is this model current? The model side of the one answer (:class:`~embedkit.artifacts.Currency`): whether
``output_dir`` holds the model a recipe trains (its manifest records the recipe it was trained with), and if not,
how its training settings differ. ``embedkit train`` and the train stage of ``embedkit run`` refuse a model
trained otherwise (a trained model is never replaced unless the user overwrites it); a run whose train stage is
left out uses it as it is, with a warning."""

from __future__ import annotations

from pathlib import Path

from embedkit.artifacts import Currency, read_json, recorded_differences
from embedkit.config import Recipe, training_settings
from embedkit.train.run import MANIFEST

FOUND = "holds a model trained with other settings"
REMEDY = "pass --overwrite to train again and replace it, or set output_dir to keep both"


def model_currency(recipe: Recipe) -> Currency:
    """Whether ``recipe.output_dir`` holds the model ``recipe`` trains: absent (no folder), current (its
    training settings, :func:`~embedkit.config.training_settings`, are the recipe's), or the differences as
    ``key: recorded -> wanted``. A folder embedkit did not train is never current, and ``--overwrite`` does not
    replace it."""
    folder = Path(recipe.output_dir)
    where = f"output_dir {folder}"
    if not folder.exists():
        return Currency(where, None, FOUND, REMEDY)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return Currency(where, (f"no {MANIFEST}",), "holds no model embedkit trained",
                        "--overwrite replaces only those: set output_dir to another folder")
    saved = read_json(manifest).get("recipe")
    if not isinstance(saved, dict):
        return Currency(where, (f"{manifest} records no recipe",), FOUND, REMEDY)
    return Currency(where, recorded_differences(training_settings(saved), training_settings(recipe)), FOUND, REMEDY)
