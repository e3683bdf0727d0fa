"""The recipe reference (docs/reference/recipe.md), generated from the sections' fields and their help."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import yaml

from embedkit.config.fields import default_of
from embedkit.config.loading import _type_name
from embedkit.config.schema import Recipe


def yaml_value(value: Any) -> str:
    """A value as a recipe writes it: ``auto``, ``null``, ``true``, ``[]``, ``[bm25, base]``, ``8.0e-05``.

    >>> [yaml_value(v) for v in ("auto", None, True, [], ["a", "b"], 8e-05, "")]
    ['auto', 'null', 'true', '[]', '[a, b]', '8.0e-05', "''"]
    """
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def recipe_keys(cls: type = Recipe, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every recipe key, types and defaults as a recipe writes them: the source
    of the recipe reference (docs/reference/recipe.md)."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(recipe_keys(tp, key + "."))
            continue
        rows.append((key, _type_name(tp, quote=False), yaml_value(default_of(f)), f.metadata.get("help", "")))
    return rows


def reference_markdown() -> str:
    """The recipe reference table, generated from the dataclasses (the docs' recipe reference page holds it)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, tp, default, text in recipe_keys():
        lines.append(f"| `{key}` | {tp.replace(' | ', ' / ')} | `{default}` | {text.replace('|', '/')} |")
    return "\n".join(lines)


def reference_page() -> str:
    """docs/reference/recipe.md, whole: written by ``make reference``; tests/test_docs.py keeps it equal to this."""
    return "\n".join([
        "# Recipe reference", "",
        "<!-- Generated from the dataclasses in embedkit/config/: do not edit; run `make reference`. -->", "",
        "A recipe has the sections `model`, `colbert`, `data`, `loss`, `training` (training), `index` (the corpus "
        "to index and the backend), `eval` (datasets, split, protocol, long-document mode, k) and `report` (where, "
        "and which baselines to score beside the model). Every key is a typed field with the help below; the CLI "
        "flags of `embedkit index`, `eval`, `search` and `serve` are the same fields. Override any key with "
        "`--set key=value`; an unknown key fails with the list of valid ones.", "",
        reference_markdown(), ""])
