"""The ``bm25`` backend: bm25s over the document store's texts (no model), saved without pickle.

Lucene's BM25 variant with k1=1.5, b=0.75 as in BEIR's Elasticsearch baseline, English stopwords. Adding or
deleting documents rebuilds the term statistics from the store (seconds for a million short documents).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from embedkit.config import IndexSettings
from embedkit.errors import EmbedkitError
from embedkit.index.base import DocumentStore, Index, IndexManifest, SearchedIndex
from embedkit.index.encode import Shard
from embedkit.index.encoders import LexicalEncoder
from embedkit.index.registry import NO_MODEL
from embedkit.models.encoder import Encoder

BM25_DIR = "bm25"
K1, B, STOPWORDS = 1.5, 0.75, "en"  # the one place BM25's parameters are set (mining reads them here too)


def _retrieve(retriever, queries: list[str], k: int, num_documents: int) -> tuple[np.ndarray, np.ndarray]:
    import bm25s

    k = min(k, num_documents)
    tokens = bm25s.tokenize(queries, stopwords=STOPWORDS, show_progress=False)
    positions, scores = retriever.retrieve(tokens, k=k, show_progress=False)
    positions = np.where(scores > 0, positions, -1)  # (num_queries, k); no term overlap = no hit
    return scores, positions


class BM25Index(Index):
    """A ``bm25`` index folder. Its encoder is always the lexical one: queries are searched as texts."""

    def __init__(self, folder: str | Path, encoder: Encoder | None = None):
        import bm25s

        super().__init__(folder, encoder or LexicalEncoder())
        self.retriever = bm25s.BM25.load(str(self.folder / BM25_DIR), mmap=True, show_progress=False)

    def search_encoded(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return _retrieve(self.retriever, queries, k, len(self.store.ids))


class BM25Over(SearchedIndex):
    """BM25 in memory over another index's own documents (its store, so the same positions and ids): a lexical
    part to fuse with that index, with no folder of its own. Its manifest is the other index's, made lexical."""

    def __init__(self, index: SearchedIndex):
        self.store = index.store
        self.encoder = LexicalEncoder()
        self.manifest = replace(index.manifest, kind="lexical", backend="bm25", model=NO_MODEL,
                                model_fingerprint=NO_MODEL, embedding_dim=0, normalized=False,
                                settings={"k1": K1, "b": B, "stopwords": STOPWORDS})
        self.retriever = fit_bm25(_store_texts(index.store))

    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return _retrieve(self.retriever, queries, k, len(self.store.ids))


def fit_bm25(texts: list[str]):
    """bm25s's BM25 with embedkit's parameters, indexed over ``texts``."""
    import bm25s

    retriever = bm25s.BM25(k1=K1, b=B)
    tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, show_progress=False)
    if not tokens.vocab:  # bm25s fails on an empty vocabulary with a bare ValueError
        raise EmbedkitError("the documents hold no word BM25 can index (words of two or more letters that are not "
                            f"{STOPWORDS} stop words)")
    retriever.index(tokens, show_progress=False)
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

    def open(self, folder: Path, encoder: Encoder | None) -> BM25Index:
        return BM25Index(folder, encoder)

    def append(self, folder: Path, manifest: IndexManifest, vectors, store: DocumentStore) -> None:
        _write(folder, _store_texts(store))

    def remove(self, folder: Path, manifest: IndexManifest, positions: np.ndarray, store: DocumentStore) -> None:
        _write(folder, _store_texts(store))


BACKEND = BM25Backend()
