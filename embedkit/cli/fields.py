"""Command-line flags generated from the recipe dataclasses, so a flag and its recipe key are one field.

``--batch-size`` on ``embedkit eval`` is ``EvalOptions.batch_size``: same type check, same choices, same
help text and default as the recipe key ``eval.batch_size``. Nested sections (``index.faiss.nprobe``) become
flat flags (``--nprobe``) listed in the section's option group; a field may name its own flag (``output_dir``
of the index is ``--index-dir``), its own help for the flag (``--no-cache``) and its option group.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import types
import typing
from typing import Any, Literal

import yaml

from embedkit.config import _build, _type_name, default_of

logger = logging.getLogger(__name__)


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _walk(cls: type, path: tuple[str, ...] = (), group: str | None = None
          ) -> list[tuple[tuple[str, ...], dataclasses.Field, Any, str | None]]:
    """(path, field, type, option group) of every leaf field; a section's ``group`` holds all its fields."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(_walk(tp, path + (f.name,), f.metadata.get("group") or group))
        else:
            rows.append((path + (f.name,), f, tp, f.metadata.get("group") or group))
    return rows


def shown_default(value: Any) -> str | None:
    """A default as a user types it on the command line; None when there is nothing to show (no value, an
    empty list, a switch).

    >>> [shown_default(v) for v in ("auto", None, [], [0.5, 0.5], 8e-05, 100, False)]
    ['auto', None, None, '0.5 0.5', '8e-05', '100', None]
    """
    if value is None or isinstance(value, bool) or value == [] or value == "":
        return None
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def field_help(f: dataclasses.Field) -> str:
    """The flag's help: the field's prose and, where there is one to show, its default."""
    text = f.metadata.get("flag_help")
    if text:
        return text
    text = f.metadata.get("help", "")
    default = shown_default(default_of(f))
    if default is None:
        return text
    return f"{text[:-1]} (default: {default})." if text.endswith(".") else f"{text} (default: {default})"


def add_fields(parser: argparse.ArgumentParser, cls: type, dest: str, skip: tuple[str, ...] = (),
               group: str | None = None) -> None:
    """Add one flag per (nested) field of ``cls``; values land in ``args.<dest>`` as a raw mapping.

    Flags go in the option group their field (or section) names, else in ``group``, else among the
    parser's options; groups are made once per title.
    """
    groups: dict[str, Any] = {g.title: g for g in parser._action_groups if g.title}
    for path, f, tp, field_group in _walk(cls):
        if f.name in skip:
            continue
        title = field_group or group
        target = parser
        if title:
            if title not in groups:
                groups[title] = parser.add_argument_group(title)
            target = groups[title]
        default = default_of(f)
        kwargs: dict[str, Any] = {"dest": f"{dest}.{'.'.join(path)}", "default": argparse.SUPPRESS,
                                  "help": field_help(f)}
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
                kwargs["metavar"] = f.metadata.get("metavar") or _type_name(typing.get_args(inner)[0]).upper()
            else:
                kwargs["type"] = _parse_scalar
                kwargs["metavar"] = f.metadata.get("metavar") or (f.name.upper() if inner is str
                                                                  else _type_name(inner).upper())
        target.add_argument(_flag(f), **{k: v for k, v in kwargs.items() if v is not None})
        if f.metadata.get("renamed_from"):  # the old flag: same field, a warning, hidden from --help
            old = {**kwargs, "help": argparse.SUPPRESS, "action": _Renamed, "new_flag": _flag(f)}
            if "const" in old:  # a boolean flag takes no value
                old["nargs"] = 0
            target.add_argument("--" + f.metadata["renamed_from"].replace("_", "-"),
                                **{k: v for k, v in old.items() if v is not None})


class _Renamed(argparse.Action):
    """A flag's old name: still accepted, with a warning on stderr that names the new flag."""

    def __init__(self, *args: Any, new_flag: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.new_flag = new_flag

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        logger.warning("%s is deprecated: use %s (same values)", option_string, self.new_flag)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):  # ValueError: an integer of more digits than Python converts
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
