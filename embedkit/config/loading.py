"""Recipes read from YAML and mappings: ``key=value`` overrides, coercion of each value to its field's type (unknown
keys fail with the valid ones, moved keys say where they went), field bounds and cross-field checks.

What this returns is typed and field-checked but not yet checked against the registries (the loss fits the kind,
the ColBERT library is usable here): load recipes with :func:`embedkit.train.recipes.load_recipe`, which does both.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from embedkit.config.schema import Recipe
from embedkit.config.training import REGULARIZER_MAX
from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)


def _type_name(tp: Any, quote: bool = True) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) if quote else str(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a, quote) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0], quote)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _shown(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it, cut short (a 4,000-digit number is not echoed whole).

    >>> _shown("x" * 100)[-20:]
    '... (102 characters)'
    """
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**18 else "a number of over 18 digits"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except EmbedkitError as exc:
                errors.append(exc)
        raise EmbedkitError(f"{where}: expected {_type_name(tp)}, got {_shown(value)}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) and {"on", "off"} <= set(allowed):  # YAML reads an unquoted on/off as a boolean
            value = "on" if value else "off"
        if value not in allowed:
            raise EmbedkitError(f"{where}: {_shown(value)} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise EmbedkitError(f"{where}: expected {_type_name(tp)}, got {_shown(value)}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise EmbedkitError(f"{where}: expected a mapping of keys, got {_shown(value)}")
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise EmbedkitError(f"{where}: expected true or false, got {_shown(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise EmbedkitError(f"{where}: expected an integer, got {_shown(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "8e-5" as a string
            except ValueError:
                pass
        raise EmbedkitError(f"{where}: expected a number, got {_shown(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise EmbedkitError(f"{where}: expected a string, got {_shown(value)}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


# Recipe keys that have moved, and where to: an old recipe gets one error that says what to write instead.
MOVED_KEYS = {"model.unpadded": "training.packed, index.packed and eval.packed (one per stage, as the "
                                "precision of training and encoding is)",
              # the model's runtime is chosen per stage, beside its precision (index.backend is the index's)
              "model.backend": "index.model_backend and eval.model_backend (torch, onnx or openvino: the runtime "
                               "each stage encodes with, beside its precision)"}


def _renamed(cls: type, raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``raw`` with the old names of renamed fields (``renamed_from``) read as the new ones, each with a warning
    on stderr that names the new key; both names at once is an error."""
    prefix = f"{where}." if where else ""
    for f in dataclasses.fields(cls):
        old = f.metadata.get("renamed_from")
        if old is None or old not in raw:
            continue
        if f.name in raw:
            raise EmbedkitError(f"{prefix}{old} and {prefix}{f.name} are one setting ({old} is its old name): "
                                f"keep {prefix}{f.name} only")
        logger.warning("%s%s is deprecated: write %s%s (same values)", prefix, old, prefix, f.name)
        raw = {(f.name if key == old else key): value for key, value in raw.items()}
    return raw


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    raw = _renamed(cls, raw, where)
    unknown = [k for k in raw if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        if f"{prefix}{unknown[0]}" in MOVED_KEYS:
            raise EmbedkitError(f"{prefix}{unknown[0]} has moved: set {MOVED_KEYS[f'{prefix}{unknown[0]}']}")
        raise EmbedkitError(
            f"unknown key {prefix}{unknown[0]!s}; valid keys{' in ' + where if where else ''}: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except EmbedkitError as exc:  # a field's bound (Bounded): name it by its full key
        field_name = str(exc).split(":", 1)[0]
        if where and field_name in names:
            raise EmbedkitError(f"{where}.{exc}") from None
        raise


def _set_override(raw: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise EmbedkitError(f"--set expects key=value, got {assignment!r}")
    dotted, text = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except (yaml.YAMLError, ValueError):  # ValueError: an integer of more digits than Python converts
        value = text
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise EmbedkitError(f"--set {dotted}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def check_fields(recipe: Recipe) -> Recipe:
    """Cross-field checks that a single field's type cannot express. What needs a registry (the loss fits the
    kind and the data, the ColBERT library is usable here) is checked by :func:`embedkit.train.recipes.load_recipe`,
    at the layer that holds the registries, after these."""
    for name, value in [("training.batch_size", recipe.training.batch_size),
                        ("loss.mini_batch_size", recipe.loss.mini_batch_size),
                        ("training.gradient_accumulation_steps", recipe.training.gradient_accumulation_steps)]:
        if value < 1:
            raise EmbedkitError(f"{name}: must be at least 1, got {value}")
    if recipe.model.max_seq_length is not None and recipe.model.max_seq_length < 1:
        raise EmbedkitError(f"model.max_seq_length: must be at least 1 (or null: the model's own limit), "
                            f"got {recipe.model.max_seq_length}")
    if recipe.training.max_steps == 0:
        raise EmbedkitError("training.max_steps: must be -1 (every epoch) or at least 1, got 0")
    if recipe.training.learning_rate <= 0:
        raise EmbedkitError(f"training.learning_rate: must be positive, got {recipe.training.learning_rate}")
    if not 0 <= recipe.training.warmup_ratio < 1:
        raise EmbedkitError(f"training.warmup_ratio: must be in [0, 1), got {recipe.training.warmup_ratio}")
    for name, value in [("colbert.embedding_dim", recipe.colbert.embedding_dim),
                        ("colbert.query_length", recipe.colbert.query_length),
                        ("colbert.document_length", recipe.colbert.document_length)]:
        if value is not None and value < 1:
            raise EmbedkitError(f"{name}: must be at least 1 (or null: the checkpoint's own), got {value}")
    for name in ("document_regularizer_weight", "query_regularizer_weight"):
        value = getattr(recipe.sparse, name)
        if not 0 <= value <= REGULARIZER_MAX:
            raise EmbedkitError(f"sparse.{name}: must be in [0, {REGULARIZER_MAX}] (FLOPS regulariser weight; "
                                f"typical 1e-5 to 1e-2), got {value}")
    return recipe


def parse_recipe(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), source: str = "recipe") -> Recipe:
    """A recipe mapping with ``key=value`` overrides applied, typed and its fields checked; errors start with
    ``source``. Not checked against the registries: load recipes with ``embedkit.train.recipes.load_recipe``."""
    raw = copy.deepcopy(dict(raw or {}))  # overrides write into nested sections: never into the caller's mapping
    if isinstance(overrides, str):  # one "key=value" passed on its own, not iterated character by character
        overrides = [overrides]
    for assignment in overrides:
        _set_override(raw, assignment)
    try:
        return check_fields(_build(Recipe, raw, ""))
    except EmbedkitError as exc:
        raise EmbedkitError(f"{source}: {exc}") from None


def read_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """A YAML recipe read, overridden and parsed as :func:`parse_recipe` does; errors name the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise EmbedkitError(f"recipe not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # an integer of more digits than Python converts (not a YAMLError)
        raise EmbedkitError(f"{path}: {str(exc)[:100]}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise EmbedkitError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is not None and not isinstance(raw, dict):
        raise EmbedkitError(f"{path}: a recipe is a mapping of sections, got {type(raw).__name__}")
    return parse_recipe(raw or {}, overrides, source=str(path))
