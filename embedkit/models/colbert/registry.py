"""The one place a ColBERT library is chosen: name → library, what ``auto`` stands for, and the library a loaded
model belongs to.

A leaf (the standard library and ``embedkit.errors``; the libraries' modules are imported on first use and
import their own heavy dependencies lazily), so that recipe validation can check ``colbert.library`` against
it before any work starts.

``auto`` is the first library available in this order. sentence-transformers comes first: from version 6 it
ships ``MultiVectorEncoder`` (model, MaxSim scoring, losses, trainer), installs beside the current stack, and
reads PyLate checkpoints with the same token vectors (tests/models/test_colbert_libraries.py). PyLate pins
sentence-transformers 5.3, so it lives in an environment of its own; there ``auto`` picks it, and the same
recipe runs in both environments.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from embedkit.errors import EmbedkitError

AUTO = "auto"
LIBRARIES = {  # name → module:attribute, imported on first use
    "sentence-transformers": "embedkit.models.colbert.st_library:LIBRARY",
    "pylate": "embedkit.models.colbert.pylate_library:LIBRARY",
}


class ColbertLibrary(Protocol):
    """What embedkit does with a ColBERT library: every call site goes through one of these methods, so nothing
    outside the library modules imports or branches on a library."""

    name: str

    def unavailable(self) -> str | None:
        """Why this environment cannot use the library (what to install), or None when it can."""

    def version(self) -> str: ...

    def owns(self, model: Any) -> bool:
        """Whether ``model`` is one of this library's models."""

    # ----------------------------------------------------------------- models (embedkit.models.colbert)
    def build(self, name: str, colbert: Any, fresh: bool, device: str | None, trust_remote_code: bool) -> Any:
        """A model of ``name``: a ColBERT checkpoint with ``colbert``'s non-null fields applied (``fresh`` False),
        or a backbone with a fresh projection and markers per ``colbert`` (``fresh`` True, no field null)."""

    def encode(self, model: Any, texts: list[str], *, query: bool, batch_size: int,
               show_progress: bool) -> list[Any]:
        """One (tokens_i, dim) float32 array per text; queries [MASK]-expanded, documents never."""

    def document_side(self, model: Any) -> Any:
        """How the library encodes a document (``embedkit.models.packed`` ``DocumentSide``: tokenisation,
        the modules after the backbone, dropped tokens), for the packed ModernBERT forward."""

    def padded_query_length(self, model: Any) -> int:
        """The longest padded batch that must keep HF's padded forward under the packed one (``enable_packed``'s
        ``padded_fallback``): the query length when queries are padded with expansion tokens that are masked out
        of attention but scored (the packed forward returns zeros at masked positions); 0 when there are none."""

    def dim(self, model: Any) -> int: ...

    def set_document_length(self, model: Any, length: int) -> None: ...

    def document_length(self, model: Any) -> int | None:
        """The length in tokens documents are cut at (what results record as the effective max length)."""

    def maxsim(self, query: Any, documents: list[Any]) -> Any:
        """Scores (num_documents,) of one query (query_tokens, dim) against documents of any lengths."""

    # ----------------------------------------------------------------- training (embedkit.train)
    def trainer_classes(self) -> tuple[type, type]:
        """(trainer, training arguments) classes."""

    def trainer_arguments(self, model: Any) -> dict[str, Any]:
        """Extra trainer keyword arguments (a data collator)."""

    def training_arguments(self, model: Any, columns: list[str], distillation: bool) -> dict[str, Any]:
        """Extra training arguments: the markers as prompts on ``columns`` (the first is the query), the batch
        sampler of the data layout."""

    def contrastive_loss(self, model: Any, gather: bool) -> Any: ...

    def cached_contrastive_loss(self, model: Any, mini_batch_size: int, gather: bool) -> Any: ...

    def distillation_loss(self, model: Any) -> Any: ...

    def distillation_rows(self, train: Any, queries: Any, documents: Any, n_ways: int) -> Any:
        """``train`` (query_id, document_ids, scores) resolved lazily into the rows the distillation loss reads."""

    def ir_evaluator(self, queries: dict[str, str], corpus: dict[str, str], relevant: dict[str, set[str]],
                     batch_size: int, metrics: dict[str, list[int]]) -> Any:
        """An IR evaluator (exact MaxSim over a small corpus) whose primary metric is ``maxsim_ndcg@10``."""


def _load(name: str) -> ColbertLibrary:
    module, attr = LIBRARIES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def check_name(name: str) -> None:
    if name != AUTO and name not in LIBRARIES:
        raise EmbedkitError(f"unknown ColBERT library {name!r}; use {AUTO}, {', '.join(LIBRARIES)}")


def get_library(name: str = AUTO) -> ColbertLibrary:
    """The library ``name`` stands for in this environment (``auto``: the first available one). An explicit
    choice that this environment cannot honour, or none available, is one clear error naming what to install."""
    check_name(name)
    if name != AUTO:
        library = _load(name)
        reason = library.unavailable()
        if reason:
            raise EmbedkitError(f"the ColBERT library {name} is not usable here: {reason}")
        return library
    reasons = []
    for candidate in LIBRARIES:
        library = _load(candidate)
        reason = library.unavailable()
        if reason is None:
            return library
        reasons.append(f"{candidate}: {reason}")
    raise EmbedkitError("no ColBERT library is usable here (" + "; ".join(reasons) + ")")


def check_library(name: str, usable: bool = True) -> str | None:
    """Check ``name`` (and with ``usable``, that this environment can use it) without importing any library:
    what recipe validation calls. Returns the name it resolves to here, when checked."""
    if not usable:
        check_name(name)
        return None
    return get_library(name).name


def library_of(model: Any) -> ColbertLibrary:
    """The library whose model ``model`` is."""
    for name in LIBRARIES:
        library = _load(name)
        if library.unavailable() is None and library.owns(model):
            return library
    raise EmbedkitError(f"{type(model).__name__} is not a model of a ColBERT library embedkit knows "
                        f"({', '.join(LIBRARIES)})")


def manifest_entry(library: ColbertLibrary) -> dict[str, str]:
    """What manifests record about the library that made a model or an index."""
    return {"colbert_library": library.name, "colbert_library_version": library.version()}
