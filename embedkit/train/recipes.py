"""The one way to load a recipe (``embedkit run|train|sweep``, the quickstart, eval scripts, Python callers):
:func:`load_recipe` reads it (a YAML file, or a mapping of its contents), applies ``key=value`` overrides, types and
field-checks it through :mod:`embedkit.config.loading`, checks it against the registries the recipe names and
returns the complete recipe, so a mistake is one error naming the key before any model loads or any folder is
written, and nothing is filled in afterwards.

- ``loss.name``: one of the kind's losses, reading the recipe's ``data.format`` (:mod:`embedkit.train.losses`);
  left null, it becomes the kind's default, so the model card and the resume check see the loss trained with.
- ``colbert.library``: for a multi-vector recipe, a ColBERT library this environment can use
  (:mod:`embedkit.models.colbert.registry`); for any recipe, a known name (its ``Literal`` type says so).
- ``loss.matryoshka_dims``: for kinds with one vector per text only.

These checks live here, at the training layer, because the registries they read live at or below it; the
config layer, which every other layer imports, knows no registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embedkit.config import Recipe
from embedkit.config.loading import parse_recipe, read_recipe
from embedkit.errors import EmbedkitError
from embedkit.index.registry import KINDS, kind_entry
from embedkit.models.colbert.registry import check_library
from embedkit.train.losses import LOSSES, default_loss, losses_for


def load_recipe(recipe: str | Path | Mapping[str, Any], overrides: list[str] | tuple[str, ...] = (),
                source: str | None = None) -> Recipe:
    """The complete, validated recipe from a YAML file (a path) or a mapping of its contents, with ``key=value``
    overrides applied: typed, field-checked, checked against the registries and completed (a null ``loss.name``
    becomes the kind's default). Errors start with ``source`` (default: the file's path, or ``recipe``).

    >>> load_recipe({"kind": "sparse"}, ["training.max_steps=5"]).loss.name
    'splade'
    """
    if isinstance(recipe, Mapping):
        source = source or "recipe"
        parsed = parse_recipe(dict(recipe), overrides, source)
    else:
        source = source or str(recipe)
        parsed = read_recipe(recipe, overrides)
    try:
        return _checked(parsed)
    except EmbedkitError as exc:
        raise EmbedkitError(f"{source}: {exc}") from None


def _checked(recipe: Recipe) -> Recipe:
    """``recipe`` checked against the registries, as a new recipe with its loss filled in."""
    if recipe.loss.name is None:
        loss = dataclasses.replace(recipe.loss, name=default_loss(recipe.kind, recipe.data.format))
        recipe = dataclasses.replace(recipe, loss=loss)
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

