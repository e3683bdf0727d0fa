"""The ``bm25`` backend: bm25s over the document store's texts (no model), saved without pickle.

Lucene's BM25 variant with k1=1.5, b=0.75 as in BEIR's Elasticsearch baseline, English stopwords. Adding or
deleting documents rebuilds the term statistics from the store (seconds for a million short documents).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedkit.config import IndexSettings
from embedkit.index.base import DocumentStore, Index, IndexManifest
from embedkit.index.encode import Shard

BM25_DIR = "bm25"


class BM25Index(Index):
    def __init__(self, folder: str | Path, encoder=None):
        import bm25s

        self.folder = Path(folder)
        self.manifest = IndexManifest.load(self.folder)
        self.store = DocumentStore(self.folder)
        self.encoder = encoder
        self._bm25s = bm25s
        self.retriever = bm25s.BM25.load(str(self.folder / BM25_DIR), mmap=True, show_progress=False)

    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.store.ids))
        tokens = self._bm25s.tokenize(queries, stopwords="en", show_progress=False)
        positions, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        positions = np.where(scores > 0, positions, -1)  # (num_queries, k); no term overlap = no hit
        return scores, positions


def _write(folder: Path, texts: list[str]) -> None:
    import bm25s

    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    retriever.save(str(folder / BM25_DIR), show_progress=False)


def _store_texts(store: DocumentStore) -> list[str]:
    return [store.text(i) for i in range(len(store.ids))]


class BM25Backend:
    name = "bm25"
    kind = "lexical"

    def build(self, shards: list[Shard], folder: Path, settings: IndexSettings, dim: int) -> dict:
        _write(folder, [text for shard in shards for _, text in shard.documents()])
        return {"k1": 1.5, "b": 0.75, "stopwords": "en"}

    def open(self, folder: Path, encoder) -> BM25Index:
        return BM25Index(folder, encoder)

    def append(self, folder: Path, manifest: IndexManifest, vectors, store: DocumentStore) -> None:
        _write(folder, _store_texts(store))

    def remove(self, folder: Path, manifest: IndexManifest, positions: np.ndarray, store: DocumentStore) -> None:
        _write(folder, _store_texts(store))


BACKEND = BM25Backend()
