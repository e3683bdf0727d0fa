"""What several sub-commands share: the flag type of counts, the ``--set`` override flag's settings, and the
flags generated from recipe fields that search, serve, index and eval read the same way (the flags themselves
come from :mod:`embedkit.cli.fields`)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

_MAX_COUNT = 2**31 - 1  # what FAISS, numpy indexing and torch take as a count

# ``--set KEY=VALUE`` of the commands that read a recipe.
OVERRIDES: dict[str, Any] = dict(action="append", metavar="KEY=VALUE",
                                 help="Override a recipe key, e.g. --set training.learning_rate=5e-5 (repeatable).")

RECIPE_HELP = "The YAML recipe (recipes/ holds examples)."


def count(text: str) -> int:
    """A flag's whole number of at least 1 (a count, a size, k); an over-long value is not echoed whole.

    >>> count("3")
    3
    """
    try:
        value = int(text) if len(text) <= 40 else None
    except ValueError:
        value = None
    if value is None or not 1 <= value <= _MAX_COUNT:
        shown = repr(text) if len(text) <= 40 else repr(text[:20]) + f"... ({len(text)} characters)"
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {_MAX_COUNT}, got {shown}")
    return value


def add_colbert_library(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--colbert-library``: the recipe's colbert.library field as a flag (its help, default and checks)."""
    from embedkit.cli.fields import add_fields
    from embedkit.config import ColbertConfig

    add_fields(p, ColbertConfig, "colbert", skip=tuple(f.name for f in dataclasses.fields(ColbertConfig)
                                                         if f.name != "library"))


def colbert_library(args: argparse.Namespace) -> str:
    """``--colbert-library`` (the recipe's colbert.library). An explicit choice is checked before any work (an
    unknown name, or a library this environment cannot use, is one clear error); ``auto`` only when a colbert
    model is loaded, so dense and bm25 work needs no ColBERT library."""
    from embedkit.cli.fields import from_args
    from embedkit.config import ColbertConfig
    from embedkit.models.colbert.registry import AUTO, check_library

    library = from_args(args, ColbertConfig, "colbert").library
    if library != AUTO:
        check_library(library)
    return library


def add_searcher_fields(p: argparse.ArgumentParser) -> None:
    """The recipe fields that ``search`` and ``serve`` open an index with: ``--colbert-library``,
    ``--model-backend`` and RetrieveConfig's flags (the recipe's eval.retrieve section), one per field, in the
    fusion and reranking groups."""
    from embedkit.cli.fields import add_fields
    from embedkit.config import EncodeSettings, RetrieveConfig

    add_colbert_library(p)
    add_fields(p, EncodeSettings, "encode", skip=tuple(f.name for f in dataclasses.fields(EncodeSettings)
                                                       if f.name != "model_backend"))
    add_fields(p, RetrieveConfig, "retrieve")


def model_backend(args: argparse.Namespace) -> str:
    """``--model-backend`` of search and serve: ``EncodeSettings.model_backend``, as on index and eval."""
    from embedkit.cli.fields import from_args
    from embedkit.config import EncodeSettings

    return from_args(args, EncodeSettings, "encode").model_backend


def retrieve_config(args: argparse.Namespace):
    """The RetrieveConfig the flags of :func:`add_searcher_fields` (or eval's) give."""
    from embedkit.cli.fields import from_args
    from embedkit.config import RetrieveConfig

    return from_args(args, RetrieveConfig, "retrieve")
