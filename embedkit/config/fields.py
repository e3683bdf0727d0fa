"""How a config field is declared: its help text, flag, option group and numeric bounds (:func:`_help`), the
bounds check every section runs on construction (:class:`Bounded`), and the option types several sections share."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, Literal

from embedkit.errors import EmbedkitError

Kind = Literal["dense", "colbert", "sparse"]
# The packed ModernBERT forward (no padding token computed): auto uses it for ModernBERT models and falls back to
# Hugging Face's padded forward where it cannot be used or its first-use check fails; on insists (those are
# errors); off never.
PackedMode = Literal["auto", "on", "off"]
PACKED_HELP = ("Packed ModernBERT forward {what} (no padding token computed): auto uses it for ModernBERT (checked "
               "against HF on first use, HF's forward on a mismatch), on makes a mismatch an error, off keeps HF's "
               "padded forward. Formerly unpadded (still read, with a warning).")


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING,
          flag: str | None = None, flag_help: str | None = None, group: str | None = None,
          metavar: str | None = None, low: float | None = None, high: float | None = None,
          above: float | None = None, below: float | None = None, renamed_from: str | None = None) -> Any:
    """A field with its help text; ``flag`` names its command-line flag where ``--field-name`` would not do,
    ``flag_help`` is the flag's own help where it differs (a flag that turns a default-on setting off),
    ``group`` the option group of the flag (on a section: of all its flags), ``metavar`` its value's name.
    ``low``/``high`` (inclusive) and ``above``/``below`` (exclusive) bound a number: :class:`Bounded` checks
    them for recipes, ``--set``, flags and Python alike (null, where allowed, is never out of bounds).
    ``renamed_from`` is the field's old name: a recipe key or flag of that name is still read, with a warning."""
    options = (("flag", flag), ("flag_help", flag_help), ("group", group), ("metavar", metavar), ("low", low),
               ("high", high), ("above", above), ("below", below), ("renamed_from", renamed_from))
    metadata = {"help": text, **{k: v for k, v in options if v is not None}}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def bound_error(name: str, value: Any, f: dataclasses.Field) -> str | None:
    """What is wrong with ``value`` for the field ``f`` given its bounds, or None.

    >>> bound_error("k", 0, dataclasses.field(metadata={"low": 1}))
    'k: must be at least 1, got 0'
    """
    meta = f.metadata
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    shown = f"{value}" if not isinstance(value, int) or abs(value) < 10**18 else "a number of over 18 digits"
    if "low" in meta and value < meta["low"]:
        return f"{name}: must be at least {meta['low']}, got {shown}"
    if "high" in meta and value > meta["high"]:
        return f"{name}: must be at most {meta['high']}, got {shown}"
    if "above" in meta and not value > meta["above"]:
        return f"{name}: must be above {meta['above']}, got {shown}"
    if "below" in meta and not value < meta["below"]:
        return f"{name}: must be below {meta['below']}, got {shown}"
    return None


class Bounded:
    """Config sections whose numeric fields carry bounds (``_help(..., low=1)``): checked on construction, so a
    recipe, a ``--set``, a flag and a Python caller all get the same one-line error."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            problem = bound_error(f.name, getattr(self, f.name), f)
            if problem:
                raise EmbedkitError(problem)


def default_of(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def narrow(cls: type, obj: Any) -> Any:
    """The ``cls`` part of a section that extends it (``IndexSettings`` of an ``IndexConfig``)."""
    return cls(**{f.name: getattr(obj, f.name) for f in dataclasses.fields(cls)})
