"""Second-stage scorers for a first stage's top-N: ColBERT MaxSim (the ColBERT library's own scoring function)
or a sentence-transformers ``CrossEncoder``.

A reranker scores (query, candidate positions) pairs; it never searches. Candidate texts come from the
first stage's document store; ColBERT token vectors are either encoded at query time or read from an
exact-MaxSim ColBERT index over the same corpus (``tokens.npy`` / ``lengths.npy``), which makes a rerank
cost one query encoding plus N small MaxSims.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embedkit.config import EncodeSettings
from embedkit.errors import EmbedkitError
from embedkit.models.encoder import LateInteractionEncoder

logger = logging.getLogger(__name__)


class DocumentTexts(Protocol):
    """Where a reranker reads candidate texts: a :class:`~embedkit.index.base.DocumentStore`, or the documents
    of a request (``embedkit serve``'s ``/rerank``)."""

    def text(self, position: int) -> str: ...


class Reranker(Protocol):
    name: str
    stored: StoredTokens | None  # the stored token vectors documents are read from, if any (else their texts)

    def score(self, queries: list[str], candidates: list[np.ndarray], store: DocumentTexts) -> list[np.ndarray]:
        """One score array per query, aligned with that query's candidate positions (all >= 0)."""

    def for_texts(self) -> Reranker:
        """This reranker for documents given as texts, not the index's (no stored vectors then)."""


class StoredTokens:
    """Token vectors of an exact-MaxSim ColBERT index, read by document position (memory-mapped)."""

    def __init__(self, folder: str | Path):
        from embedkit.index.base import IndexManifest
        from embedkit.index.maxsim import LENGTHS, TOKENS
        from embedkit.index.registry import BACKENDS, backend_entry

        self.folder = Path(folder)
        self.manifest = IndexManifest.load(self.folder)
        if not backend_entry(self.manifest.backend).token_vectors:
            keeping = " or ".join(name for name, entry in BACKENDS.items() if entry.token_vectors)
            raise EmbedkitError(f"{folder}: stored token vectors need a colbert index built with --backend {keeping} "
                                f"(this one is {self.manifest.kind}/{self.manifest.backend})")
        self.tokens = np.load(self.folder / TOKENS, mmap_mode="r")  # (total tokens, dim) float16
        lengths = np.load(self.folder / LENGTHS)
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths

    def __len__(self) -> int:
        return len(self.ends)

    def get(self, positions: Sequence[int]) -> list[np.ndarray]:
        return [np.asarray(self.tokens[self.starts[p]:self.ends[p]], dtype=np.float32) for p in positions]


class ColbertReranker:
    """MaxSim by the ColBERT model's library; document vectors from ``stored`` when given, else encoded now."""

    name = "colbert"

    def __init__(self, encoder: LateInteractionEncoder, stored: StoredTokens | None = None, batch_size: int = 32):
        self.encoder = encoder
        self.stored = stored
        self.batch_size = batch_size

    def for_texts(self) -> ColbertReranker:
        """Stored token vectors belong to the index's documents: other texts are encoded at scoring time."""
        return self if self.stored is None else ColbertReranker(self.encoder, None, self.batch_size)

    def _documents(self, positions: list[int], store: DocumentTexts) -> dict[int, np.ndarray]:
        if self.stored is not None:
            return dict(zip(positions, self.stored.get(positions)))
        vectors: list[np.ndarray] = []
        for start in range(0, len(positions), self.batch_size):
            vectors += self.encoder.encode_documents([store.text(p) for p in positions[start:start + self.batch_size]])
        return dict(zip(positions, vectors))

    def score(self, queries: list[str], candidates: list[np.ndarray], store: DocumentTexts) -> list[np.ndarray]:
        query_vectors = self.encoder.encode_queries(queries)  # each (query_length, dim)
        unique = sorted({int(p) for row in candidates for p in row})  # a document shared by queries: encoded once
        docs = self._documents(unique, store)
        return [self.encoder.maxsim(q, [docs[int(p)] for p in row]) for q, row in zip(query_vectors, candidates)]


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` scoring (query, document text) pairs jointly."""

    name = "cross-encoder"
    stored = None  # it reads the documents' texts

    def __init__(self, model: Any, batch_size: int = 32):
        self.model = model
        self.batch_size = batch_size

    def for_texts(self) -> CrossEncoderReranker:
        return self

    def score(self, queries: list[str], candidates: list[np.ndarray], store: DocumentTexts) -> list[np.ndarray]:
        pairs = [(q, store.text(int(p))) for q, row in zip(queries, candidates) for p in row]
        if not pairs:
            return [np.zeros(0, np.float32) for _ in queries]
        flat = np.asarray(self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False),
                          dtype=np.float32)
        if flat.ndim > 1:  # (pairs, labels): a multi-label head; the last label is "relevant"
            flat = flat[:, -1]
        bounds = np.cumsum([len(row) for row in candidates])[:-1]
        return list(np.split(flat, bounds))


def load_colbert_reranker(model: str | None, tokens_index: str | None, settings: EncodeSettings) -> ColbertReranker:
    """``tokens_index``: an exact colbert index whose stored vectors are reused (its model by default)."""
    from embedkit.artifacts import model_fingerprint
    from embedkit.index.encoders import load_encoder
    from embedkit.models.loading import resolve_model

    stored = StoredTokens(tokens_index) if tokens_index else None
    if model is None and stored is None:
        raise EmbedkitError("ColBERT reranking needs rerank_model (a ColBERT model) or rerank_index "
                            "(a colbert index built with --backend exact)")
    name = resolve_model(model or stored.manifest.model)
    if stored is not None and model_fingerprint(name) != stored.manifest.model_fingerprint:
        raise EmbedkitError(f"{tokens_index} holds vectors of {stored.manifest.model!r}, not of {name!r}")
    # documents encoded now are cut where the stored ones were (the index's max_length), if any
    max_length = stored.manifest.settings.get("max_length") if stored else None
    encoder = load_encoder("colbert", name, replace(settings, max_length=max_length))
    return ColbertReranker(encoder, stored, settings.batch_size)


def load_cross_encoder_reranker(model: str | None, tokens_index: str | None,
                                settings: EncodeSettings) -> CrossEncoderReranker:
    from embedkit.models.cross_encoder import load_cross_encoder

    if tokens_index:
        raise EmbedkitError("rerank_index (stored ColBERT vectors) applies to colbert reranking, not cross-encoder")
    if not model:
        raise EmbedkitError("cross-encoder reranking needs rerank_model (a sentence-transformers CrossEncoder)")
    return CrossEncoderReranker(load_cross_encoder(model, model_backend=settings.model_backend), settings.batch_size)


RERANKERS = {"colbert": load_colbert_reranker, "cross-encoder": load_cross_encoder_reranker}
NO_RERANK = "none"  # RetrieveConfig.rerank when there is no second stage


def load_reranker(kind: str, model: str | None = None, tokens_index: str | None = None,
                  settings: EncodeSettings | None = None) -> Reranker:
    """The one place a reranker is chosen by name; ``settings`` encode for it (batch size, default 32; the
    ``colbert_library`` that loads a colbert reranker's model; the ``model_backend`` that runs its transformer)."""
    if kind not in RERANKERS:
        raise EmbedkitError(f"unknown reranker {kind!r}; use one of {', '.join(RERANKERS)}")
    return RERANKERS[kind](model, tokens_index, settings or EncodeSettings(batch_size=32))
