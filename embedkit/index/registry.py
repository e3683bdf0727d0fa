"""The one place an index backend is chosen: name → backend, the encoder kind each needs, and ``auto``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from embedkit.config import IndexSettings
from embedkit.errors import EmbedkitError

if TYPE_CHECKING:
    from embedkit.models.encoder import Encoder

BACKENDS = {  # name → module:attribute, imported on first use (faiss, fast-plaid, bm25s are heavy)
    "flat": "embedkit.index.faiss_index:FLAT",
    "hnsw": "embedkit.index.faiss_index:HNSW",
    "ivfpq": "embedkit.index.faiss_index:IVFPQ",
    "plaid": "embedkit.index.plaid_index:BACKEND",
    "exact": "embedkit.index.exact_index:BACKEND",
    "bm25": "embedkit.index.bm25_index:BACKEND",
}
KIND_OF = {"flat": "dense", "hnsw": "dense", "ivfpq": "dense", "plaid": "colbert", "exact": "colbert",
           "bm25": "lexical"}
NO_MODEL = "bm25"  # the model name of indexes that need none (``embedkit eval --model bm25``)


class Backend(Protocol):
    """What every index backend implements; documents keep positions 0..n-1 in document-store order.

    ``manifest`` is an ``IndexManifest``, ``store`` a ``DocumentStore``, ``open`` returns an ``Index`` (all in
    ``embedkit.index.base``, which looks its backend up here: typed ``Any`` to keep the modules acyclic).
    """

    name: str
    kind: str  # which encoder fills it: dense | colbert | lexical (none)

    def build(self, shards: list, folder: Path, settings: IndexSettings, dim: int) -> dict:
        """Write the backend's files into ``folder``; return the settings recorded in the manifest."""

    def open(self, folder: Path, encoder: Encoder | None) -> Any: ...

    def append(self, folder: Path, manifest: Any, vectors: Any, store: Any) -> None:
        """Add encoded documents after the last position (``store`` already holds them)."""

    def remove(self, folder: Path, manifest: Any, positions: Any, store: Any) -> None:
        """Drop documents by position; the rest are renumbered in order (``store`` is already compacted)."""


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise EmbedkitError(f"unknown index backend {name!r}; use one of {', '.join(BACKENDS)}")
    module, attr = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def detect_kind(model: str) -> str:
    """colbert for ColBERT folders (PyLate, sentence-transformers MultiVectorEncoder or Stanford-NLP saves),
    lexical for ``bm25``, else dense. Only local folders are read: a hub id is dense unless told (``--kind``)."""
    if model == NO_MODEL:
        return "lexical"
    from embedkit.models.colbert.checkpoints import is_colbert_checkpoint

    return "colbert" if is_colbert_checkpoint(model, local_only=True) else "dense"


def encoder_kind(settings: IndexSettings, model: str, kind: str | None = None) -> str:
    """The encoder kind a build needs: fixed by an explicit backend, else by the model; ``bm25`` (no model)
    is always lexical, whatever backend the neural models of the same run use."""
    if model == NO_MODEL:
        return "lexical"
    model_kind = kind or detect_kind(model)
    if settings.backend == "auto":
        return model_kind
    wanted = KIND_OF[settings.backend]
    if wanted != "lexical" and model_kind != wanted:
        raise EmbedkitError(f"index backend {settings.backend!r} is for {wanted} models; {model} is a {model_kind} "
                            f"model (use {', '.join(b for b, k in KIND_OF.items() if k == model_kind)} or auto)")
    return wanted


def resolve_backend(settings: IndexSettings, kind: str, num_documents: int) -> str:
    """The backend ``auto`` stands for: flat (dense), bm25 (no model), and for colbert exact MaxSim up to
    ``auto_exact_max_documents`` documents, PLAID above (see the README for the measured crossover)."""
    if settings.backend != "auto" and KIND_OF[settings.backend] == kind:
        return settings.backend
    if kind == "colbert":
        return "exact" if num_documents <= settings.auto_exact_max_documents else "plaid"
    return {"dense": "flat", "lexical": "bm25"}[kind]
