"""Fused and reranked searchers over stub indexes whose scores are fixed, so every order is known."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.config import RetrieveConfig
from embedkit.errors import EmbedkitError
from embedkit.index.base import IndexManifest, SearchedIndex
from embedkit.retrieve.retriever import (
    FusedSearcher,
    RerankedSearcher,
    bm25_over,
    compose,
    configured_reranker,
    method_name,
)

DOCS = [("d0", "parse a date string"), ("d1", "open a socket"), ("d2", "sort a list in place"),
        ("d3", "merge two sorted lists"), ("d4", "read a file line by line")]


class _Store:
    def __init__(self, docs):
        self.ids = [d for d, _ in docs]
        self._texts = [t for _, t in docs]

    def text(self, position: int) -> str:
        return self._texts[position]


class FixedIndex(SearchedIndex):
    """Returns the same per-document scores for every query (documents with no score are not hits)."""

    def __init__(self, name: str, scores: dict[int, float], docs=DOCS):
        self.store = _Store(docs)
        self.encoder = None
        self.manifest = IndexManifest(kind=name, backend=name, model=name, model_fingerprint=name,
                                      embedding_dim=0, normalized=False, num_documents=len(docs), corpus="stub")
        self.scores = scores

    def search_positions(self, queries, k):
        best = sorted(self.scores.items(), key=lambda kv: -kv[1])[:k]
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        for j, (p, s) in enumerate(best):
            scores[:, j], positions[:, j] = s, p
        return scores, positions


class ByLength:
    """A reranker that prefers short documents: the expected order is known from the texts."""

    name = "by-length"

    def __init__(self):
        self.seen = []

    def score(self, queries, candidates, store):
        self.seen.append([list(map(int, row)) for row in candidates])
        return [np.array([-len(store.text(int(p))) for p in row], np.float32) for row in candidates]


def test_rrf_of_two_indexes():
    lexical = FixedIndex("lexical", {0: 9.0, 1: 5.0, 2: 1.0})
    dense = FixedIndex("dense", {2: 0.9, 0: 0.8, 3: 0.1})
    fused = FusedSearcher([lexical, dense], "rrf", rrf_k=60, depth=10)
    hits = fused.search(["any"], k=10)[0]
    assert [h.id for h in hits] == ["d0", "d2", "d1", "d3"]  # d0: 1/61+1/62 > d2: 1/63+1/61 > d1: 1/62 > d3: 1/63
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert hits[0].text == "parse a date string"
    assert method_name(fused) == "rrf(lexical,dense)"
    assert fused.description()["k"] == 60


def test_weighted_fusion_follows_the_weights():
    lexical = FixedIndex("lexical", {0: 9.0, 1: 5.0, 2: 1.0})
    dense = FixedIndex("dense", {2: 0.9, 0: 0.1, 3: 0.5})
    assert FusedSearcher([lexical, dense], "weighted", [1.0, 0.0]).search(["q"], 1)[0][0].id == "d0"
    assert FusedSearcher([lexical, dense], "weighted", [0.0, 1.0]).search(["q"], 1)[0][0].id == "d2"
    scores, positions = FusedSearcher([lexical, dense], "weighted", [0.5, 0.5]).search_positions(["q", "r"], 6)
    assert positions.shape == (2, 6) and positions[0, -1] == -1  # only 4 documents were returned by either
    assert scores[0, 0] == pytest.approx(0.5 * 1 + 0.5 * 0)  # d0: best lexical, worst dense


def test_fusion_refuses_different_corpora_and_bad_weights():
    other = FixedIndex("other", {0: 1.0}, docs=DOCS[::-1])
    with pytest.raises(EmbedkitError, match="same documents"):
        FusedSearcher([FixedIndex("a", {0: 1.0}), other])
    with pytest.raises(EmbedkitError, match="one per index"):
        FusedSearcher([FixedIndex("a", {0: 1.0}), FixedIndex("b", {0: 1.0})], "weighted", [1.0])


def test_rerank_orders_as_the_reranker_says_and_keeps_the_tail():
    first = FixedIndex("dense", {0: 0.9, 1: 0.8, 2: 0.7, 3: 0.6, 4: 0.5})
    reranker = ByLength()
    reranked = RerankedSearcher(first, reranker, top_n=3)
    hits = reranked.search(["q"], k=5)[0]
    # top 3 of the first stage (d0 19 chars, d1 13, d2 20) by length, then d3, d4 in first-stage order
    assert [h.id for h in hits] == ["d1", "d0", "d2", "d3", "d4"]
    assert reranker.seen == [[[0, 1, 2]]]
    assert hits[2].score > hits[3].score > hits[4].score
    assert method_name(reranked) == "by-length-rerank(dense)"
    assert [h.id for h in reranked.search(["q"], k=2)[0]] == ["d1", "d0"]


def test_bm25_over_an_index_store_keeps_positions():
    first = FixedIndex("dense", {0: 1.0})
    bm25 = bm25_over(first)
    assert list(bm25.store.ids) == [d for d, _ in DOCS]
    assert bm25.search(["sorted lists merge"], k=1)[0][0].id == "d3"
    assert bm25.searched_index is bm25 and bm25.manifest.kind == "lexical" and first.manifest.kind == "dense"
    assert bm25.description() == {"method": "bm25", "model": "bm25", "backend": "bm25", "num_documents": len(DOCS)}
    fused = compose(first, RetrieveConfig(fuse_with=["bm25"]))
    assert isinstance(fused, FusedSearcher) and method_name(fused) == "rrf(dense,bm25)"


def test_composed_searchers_answer_with_the_searched_index_and_are_not_indexes():
    first = FixedIndex("dense", {0: 0.9, 1: 0.8})
    fused = FusedSearcher([first, FixedIndex("lexical", {1: 1.0})])
    reranked = RerankedSearcher(fused, ByLength(), top_n=2)
    assert first.searched_index is first
    for searcher in (fused, reranked):
        assert searcher.searched_index is first and searcher.store is first.store
        assert not any(hasattr(searcher, name) for name in ("manifest", "encoder", "add", "delete"))
    assert reranked.description() == {"method": "by-length-rerank", "first_stage": fused.description(), "top_n": 2}
    assert configured_reranker(reranked) is reranked.reranker
    assert configured_reranker(fused) is None and configured_reranker(first) is None


def test_compose_rejects_unknown_parts():
    with pytest.raises(EmbedkitError, match="neither 'bm25' nor an index folder"):
        compose(FixedIndex("dense", {0: 1.0}), RetrieveConfig(fuse_with=["no/such/index"]))
