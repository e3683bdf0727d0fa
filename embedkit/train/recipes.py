"""Recipes as every entry point loads them (``embedkit run|train|sweep``, the quickstart, Python callers): read,
typed and field-checked by :mod:`embedkit.config`, then checked against the registries the recipe names, so a
mistake is one error naming the key before any model loads or any folder is written.

- ``loss.name``: one of the kind's losses, reading the recipe's ``data.format`` (:mod:`embedkit.train.losses`);
  left null, it becomes the kind's default, so the model card and the resume check see the loss trained with.
- ``colbert.library``: for a multi-vector recipe, a ColBERT library this environment can use
  (:mod:`embedkit.models.colbert.registry`); for any recipe, a known name (its ``Literal`` type says so).
- ``loss.matryoshka_dims``: for kinds with one vector per text only.

These checks live here, at the training layer, because the registries they read live at or below it; the
config layer, which every other layer imports, knows no registry.
"""

from __future__ import annotations

from pathlib import Path

from embedkit.config import Recipe, parse_recipe, read_recipe
from embedkit.errors import EmbedkitError
from embedkit.index.registry import KINDS, kind_entry
from embedkit.models.colbert.registry import check_library
from embedkit.train.losses import LOSSES, default_loss, losses_for


def check_recipe(recipe: Recipe, source: str = "recipe") -> Recipe:
    """``recipe`` checked against the registries (and its loss filled in); errors start with ``source``."""
    try:
        return _check(recipe)
    except EmbedkitError as exc:
        raise EmbedkitError(f"{source}: {exc}") from None


def _check(recipe: Recipe) -> Recipe:
    if recipe.loss.name is None:
        recipe.loss.name = default_loss(recipe.kind, recipe.data.format)
    spec = LOSSES.get(recipe.loss.name)
    if spec is None or spec.kind != recipe.kind:
        raise EmbedkitError(f"loss.name: {recipe.loss.name!r} is not a {recipe.kind} loss; "
                            f"use one of {', '.join(losses_for(recipe.kind))}")
    if spec.data_format != recipe.data.format:
        raise EmbedkitError(f"loss.name: {recipe.loss.name} trains on data.format: {spec.data_format}, "
                            f"not {recipe.data.format}")
    kind = kind_entry(recipe.kind)
    try:  # a multi-vector recipe needs a library this environment can use; any recipe, a known name
        check_library(recipe.colbert.library, usable=kind.multi_vector)
    except EmbedkitError as exc:
        raise EmbedkitError(f"colbert.library: {exc}") from None
    if recipe.loss.matryoshka_dims and not kind.vector_per_text:
        one_vector = " or ".join(name for name, entry in KINDS.items() if entry.vector_per_text)
        raise EmbedkitError(f"loss.matryoshka_dims: Matryoshka training is for kind: {one_vector} (one vector per "
                            f"text), not {recipe.kind}")
    return recipe


def recipe_from_dict(raw: dict, overrides: list[str] | tuple[str, ...] = (), source: str = "recipe") -> Recipe:
    """A recipe from a mapping (a YAML file's contents) and ``key=value`` overrides, fully checked."""
    return check_recipe(parse_recipe(raw, overrides, source), source)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a YAML recipe, apply ``key=value`` overrides, and check everything."""
    return check_recipe(read_recipe(path, overrides), str(path))
