"""BM25 baseline with bm25s, behind the same search interface as the neural indexes."""

from __future__ import annotations

import numpy as np

from embedkit.data.corpus import Corpus
from embedkit.index.base import Index, IndexManifest


class _MemoryStore:
    def __init__(self, ids: list[str], texts: list[str]):
        self.ids = ids
        self._texts = texts

    def text(self, position: int) -> str:
        return self._texts[position]


class BM25Index(Index):
    """In-memory BM25 (Lucene variant, k1=1.5, b=0.75 as in BEIR's Elasticsearch baseline) with English
    stopwords."""

    def __init__(self, corpus: Corpus):
        import bm25s

        ids, texts = [], []
        for doc_id, text in corpus:
            ids.append(doc_id)
            texts.append(text)
        self.store = _MemoryStore(ids, texts)
        self._bm25s = bm25s
        self.retriever = bm25s.BM25(k1=1.5, b=0.75)
        self.retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        self.manifest = IndexManifest(kind="bm25", backend="bm25s", model="bm25", model_fingerprint="bm25",
                                      embedding_dim=0, normalized=False, num_documents=len(ids),
                                      corpus=corpus.source)

    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.store.ids))
        tokens = self._bm25s.tokenize(queries, stopwords="en", show_progress=False)
        positions, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        positions = np.where(scores > 0, positions, -1)  # (num_queries, k); no term overlap = no hit
        return scores, positions
