"""A sparse (SPLADE) index inside composed retrievers: three- and four-way RRF with dense, BM25 and ColBERT indexes
over the same corpus (each fused score is the RRF of the parts' own rankings), and a reranker over a sparse first
stage (its candidates are the sparse top-n, its order the reranker's)."""

from __future__ import annotations

import numpy as np
import pytest

from embedkit.config import EncodeSettings, IndexSettings, RetrieveConfig
from embedkit.data.corpus import Corpus
from embedkit.index.build import build_index, open_index
from embedkit.retrieve.retriever import RerankedSearcher, compose, method_name


@pytest.fixture(scope="module")
def sparse_over_tiny_corpus(tmp_path_factory, tiny_indexes, sparse_minilm):
    """A sparse-exact index of the SPLADE MiniLM over the corpus of ``tiny_indexes`` (same documents, same order)."""
    corpus = tiny_indexes[0].parent / "corpus.jsonl"
    folder = tmp_path_factory.mktemp("sparse-hybrid") / "sparse"
    build_index(str(sparse_minilm), Corpus(str(corpus)), folder, IndexSettings(batch_size=16, max_length=64),
                progress=False)
    return folder


def _hand_rrf(searcher, queries: list[str], depth: int, k: int = 60) -> list[dict[int, float]]:
    """RRF from each part's own ranked positions: sum over parts of 1 / (k + rank), rank from 1."""
    fused: list[dict[int, float]] = [{} for _ in queries]
    for part in searcher.parts:
        _, positions = part.search_positions(queries, depth)
        for row, ranked in enumerate(positions):
            for rank, pos in enumerate([p for p in ranked.tolist() if p >= 0], start=1):
                fused[row][pos] = fused[row].get(pos, 0.0) + 1 / (k + rank)
    return fused


def _check_fused(searcher, queries: list[str], k: int = 10) -> None:
    scores, positions = searcher.search_positions(queries, k)
    want = _hand_rrf(searcher, queries, searcher.depth)
    for row in range(len(queries)):
        best = sorted(want[row].values(), reverse=True)[:k]
        np.testing.assert_allclose(scores[row], best, rtol=1e-6)  # the fused top-k are the best hand RRF scores
        for s, p in zip(scores[row], positions[row]):
            assert want[row][int(p)] == pytest.approx(float(s), rel=1e-6)


def test_three_way_rrf_sparse_dense_bm25(sparse_over_tiny_corpus, tiny_indexes, code_pairs):
    sparse = open_index(sparse_over_tiny_corpus, settings=EncodeSettings(batch_size=16))
    fused = compose(sparse, RetrieveConfig(fuse_with=[str(tiny_indexes[0]), "bm25"], fusion_depth=30))
    assert method_name(fused) == "rrf(sparse,dense,bm25)"
    queries = [p.query for p in code_pairs[:6]]
    _check_fused(fused, queries)
    # every part contributes: a document only BM25 ranks first still gets 1/61 from it
    bm25_top = fused.parts[2].search_positions(queries[:1], 1)[1][0, 0]
    assert bm25_top in set(fused.search_positions(queries[:1], 30)[1][0].tolist())


# Not marked colbert: `make test-pylate` reruns those under sentence-transformers 5.3, which has no sparse kind.
def test_four_way_rrf_with_colbert(sparse_over_tiny_corpus, tiny_indexes, code_pairs):
    sparse = open_index(sparse_over_tiny_corpus, settings=EncodeSettings(batch_size=16))
    dense_dir, colbert_dir = tiny_indexes
    fused = compose(sparse, RetrieveConfig(fuse_with=[str(dense_dir), str(colbert_dir), "bm25"], fusion_depth=20))
    assert method_name(fused) == "rrf(sparse,dense,colbert,bm25)"
    _check_fused(fused, [p.query for p in code_pairs[10:14]])


def test_cross_encoder_reranks_a_sparse_first_stage(sparse_over_tiny_corpus, tiny_modernbert, code_pairs):
    from sentence_transformers import CrossEncoder

    from embedkit.retrieve.rerank import CrossEncoderReranker

    sparse = open_index(sparse_over_tiny_corpus, settings=EncodeSettings(batch_size=16))
    model = CrossEncoder(str(tiny_modernbert), num_labels=1)  # random head: any order, but its own
    reranked = RerankedSearcher(sparse, CrossEncoderReranker(model, batch_size=8), top_n=8)
    assert method_name(reranked) == "cross-encoder-rerank(sparse)"
    query = code_pairs[3].query
    _, first = sparse.search_positions([query], 8)
    hits = reranked.search([query], k=8)[0]
    store = sparse.store
    assert {h.id for h in hits} == {store.ids[int(p)] for p in first[0] if p >= 0}  # the sparse top 8, reordered
    predicted = model.predict([(query, h.text) for h in hits], batch_size=8)
    scores = [h.score for h in hits]
    assert all(a >= b for a, b in zip(scores, scores[1:]))
    np.testing.assert_allclose(scores, predicted, rtol=1e-4, atol=1e-5)
