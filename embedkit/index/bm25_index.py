"""The ``bm25`` backend: bm25s over the document store's texts (no model), saved without pickle.

Lucene's BM25 variant with k1=1.5, b=0.75 as in BEIR's Elasticsearch baseline, English stopwords. Adding or
deleting documents rebuilds the term statistics from the store (seconds for a million short documents).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from embedkit.config import IndexSettings
from embedkit.index.base import DocumentStore, Index, IndexManifest
from embedkit.index.encode import Shard
from embedkit.index.registry import NO_MODEL

BM25_DIR = "bm25"
K1, B, STOPWORDS = 1.5, 0.75, "en"  # the one place BM25's parameters are set (mining reads them here too)


class BM25Index(Index):
    def __init__(self, folder: str | Path, encoder=None):
        import bm25s

        self.folder = Path(folder)
        self.manifest = IndexManifest.load(self.folder)
        self.store = DocumentStore(self.folder)
        self.encoder = encoder
        self._bm25s = bm25s
        self.retriever = bm25s.BM25.load(str(self.folder / BM25_DIR), mmap=True, show_progress=False)

    @classmethod
    def over(cls, index: Index) -> "BM25Index":
        """BM25 in memory over another index's own documents (its store, so the same positions and ids):
        a lexical part to fuse with that index, with no folder of its own."""
        import bm25s

        self = cls.__new__(cls)
        self.folder, self.encoder, self._bm25s = None, None, bm25s
        self.store = index.store
        self.manifest = replace(index.manifest, kind="lexical", backend="bm25", model=NO_MODEL,
                                model_fingerprint=NO_MODEL, embedding_dim=0, normalized=False,
                                settings={"k1": K1, "b": B, "stopwords": STOPWORDS})
        self.retriever = fit_bm25(_store_texts(index.store))
        return self

    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.store.ids))
        tokens = self._bm25s.tokenize(queries, stopwords=STOPWORDS, show_progress=False)
        positions, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        positions = np.where(scores > 0, positions, -1)  # (num_queries, k); no term overlap = no hit
        return scores, positions


def fit_bm25(texts: list[str]):
    """bm25s's BM25 with embedkit's parameters, indexed over ``texts``."""
    import bm25s

    retriever = bm25s.BM25(k1=K1, b=B)
    retriever.index(bm25s.tokenize(texts, stopwords=STOPWORDS, show_progress=False), show_progress=False)
    return retriever


def _write(folder: Path, texts: list[str]) -> None:
    fit_bm25(texts).save(str(folder / BM25_DIR), show_progress=False)


def _store_texts(store: DocumentStore) -> list[str]:
    return [store.text(i) for i in range(len(store.ids))]


class BM25Backend:
    name = "bm25"
    kind = "lexical"

    def build(self, shards: list[Shard], folder: Path, settings: IndexSettings, dim: int) -> dict:
        _write(folder, [text for shard in shards for _, text in shard.documents()])
        return {"k1": K1, "b": B, "stopwords": STOPWORDS}

    def open(self, folder: Path, encoder) -> BM25Index:
        return BM25Index(folder, encoder)

    def append(self, folder: Path, manifest: IndexManifest, vectors, store: DocumentStore) -> None:
        _write(folder, _store_texts(store))

    def remove(self, folder: Path, manifest: IndexManifest, positions: np.ndarray, store: DocumentStore) -> None:
        _write(folder, _store_texts(store))


BACKEND = BM25Backend()
