"""Command-line flags generated from the recipe dataclasses, so a flag and its recipe key are one field.

``--batch-size`` on ``embedkit eval`` is ``EvalOptions.batch_size``: same type check, same choices, same
help text and default as the recipe key ``eval.batch_size``. Nested sections (``index.faiss.nprobe``) become
flat flags (``--nprobe``); a field may name its own flag (``output_dir`` of the index is ``--index-dir``).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal

import yaml

from embedkit.config import _build, _type_name


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _walk(cls: type, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dataclasses.Field, Any]]:
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(_walk(tp, path + (f.name,)))
        else:
            rows.append((path + (f.name,), f, tp))
    return rows


def add_fields(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, dest: str,
               skip: tuple[str, ...] = ()) -> None:
    """Add one flag per (nested) field of ``cls``; values land in ``args.<dest>`` as a raw mapping."""
    for path, f, tp in _walk(cls):
        if f.name in skip:
            continue
        flag = _flag(f)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"{f.metadata.get('help', '')} (default: {default!r})"
        if tp is bool and default:
            help_text = f"turn off: {help_text}"
        kwargs: dict[str, Any] = {"dest": f"{dest}.{'.'.join(path)}", "default": argparse.SUPPRESS,
                                  "help": help_text}
        if tp is bool:
            kwargs["action"] = "store_const"
            kwargs["const"] = not default  # --per-query turns on, --no-cache turns off
        else:
            optional = typing.get_origin(tp) in (typing.Union, types.UnionType)
            inner = [a for a in typing.get_args(tp) if a is not type(None)][0] if optional else tp  # int | None → int
            if typing.get_origin(inner) is Literal:
                kwargs["choices"] = list(typing.get_args(inner))
            elif typing.get_origin(inner) is list:
                kwargs["nargs"] = "+"
                kwargs["metavar"] = _type_name(typing.get_args(inner)[0]).upper()
            else:
                kwargs["type"] = _parse_scalar
                kwargs["metavar"] = _type_name(inner).upper()
        parser.add_argument(flag, **{k: v for k, v in kwargs.items() if v is not None})


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def from_args(args: argparse.Namespace, cls: type, dest: str, base: dict[str, Any] | None = None) -> Any:
    """Build ``cls`` from the flags given (others keep their defaults, or ``base``'s values), validated like a
    recipe section."""
    raw: dict[str, Any] = dict(base or {})
    prefix = dest + "."
    for key, value in vars(args).items():
        if not key.startswith(prefix):
            continue
        node = raw
        *parents, leaf = key[len(prefix):].split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return _build(cls, raw, dest)
