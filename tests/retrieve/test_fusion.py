"""Fusion arithmetic against values computed by hand."""

from __future__ import annotations

import pytest

from embedkit.retrieve.fusion import choose_weights, fuse, minmax, rrf, split_queries, weight_grid, weighted

BM25 = {"q1": {"a": 12.0, "b": 7.0, "c": 3.0}, "q2": {"x": 2.0}}
DENSE = {"q1": {"c": 0.9, "a": 0.8, "d": 0.1}, "q2": {"y": 0.5, "x": 0.4}}


def test_rrf_sums_reciprocal_ranks():
    fused = rrf([BM25, DENSE], k=60)
    # a: ranks 1 and 2; b: rank 2 in bm25 only; c: ranks 3 and 1; d: rank 3 in dense only
    assert fused["q1"] == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63})
    assert fused["q2"] == pytest.approx({"x": 1 / 61 + 1 / 62, "y": 1 / 61})


def test_rrf_k_and_weights():
    fused = rrf([BM25, DENSE], k=0, weights=[2.0, 1.0])
    assert fused["q1"] == pytest.approx({"a": 2 / 1 + 1 / 2, "b": 2 / 2, "c": 2 / 3 + 1 / 1, "d": 1 / 3})


def test_rrf_ignores_score_scale_but_not_order():
    rescaled = {q: {d: s * 1000 - 5 for d, s in docs.items()} for q, docs in BM25.items()}
    assert rrf([rescaled, DENSE]) == rrf([BM25, DENSE])


def test_minmax_edges():
    assert minmax({}) == {}
    assert minmax({"a": 4.0, "b": 4.0}) == {"a": 1.0, "b": 1.0}
    assert minmax({"a": -1.0, "b": 1.0, "c": 0.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}


def test_weighted_fusion_by_hand():
    fused = weighted([BM25, DENSE], weights=[0.25, 0.75])
    # bm25 minmax: a 1, b 4/9, c 0; dense minmax: c 1, a 0.875, d 0
    assert fused["q1"] == pytest.approx({"a": 0.25 * 1 + 0.75 * 0.875, "b": 0.25 * 4 / 9, "c": 0.75 * 1, "d": 0.0})
    # q2: bm25 has one hit (all-equal -> 1); dense: y 1, x 0
    assert fused["q2"] == pytest.approx({"x": 0.25, "y": 0.75})


def test_fuse_registry_and_errors():
    assert fuse("rrf", [BM25, DENSE], rrf_k=10) == rrf([BM25, DENSE], k=10)
    assert fuse("weighted", [BM25, DENSE], [0.5, 0.5]) == weighted([BM25, DENSE], [0.5, 0.5])
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse("borda", [BM25, DENSE])
    with pytest.raises(ValueError, match="2 runs"):
        rrf([BM25, DENSE], weights=[1.0])


def test_weight_grid_sums_to_one():
    grid = weight_grid(3, 0.25)
    assert len(grid) == 15  # compositions of 4 into 3 parts
    assert all(sum(w) == pytest.approx(1.0) for w in grid)


def test_choose_weights_picks_the_best_and_breaks_ties_evenly():
    # a run-scoring function that wants "c" first on q1: dense alone does it
    def score(run):
        return float(max(run["q1"], key=run["q1"].get) == "c")

    weights, value = choose_weights([BM25, DENSE], score, step=0.25)
    assert value == 1.0
    assert weights == (0.0, 1.0)  # at 0.25/0.75 a still wins: 0.25 + 0.75 * 0.875 > 0.75
    flat, _ = choose_weights([BM25, DENSE], lambda run: 0.0, step=0.25)
    assert flat == (0.5, 0.5)


def test_split_queries_is_deterministic_and_disjoint():
    qids = [f"q{i}" for i in range(400)]
    dev, test = split_queries(qids)
    assert set(dev).isdisjoint(test) and set(dev) | set(test) == set(qids)
    assert 150 < len(dev) < 250
    assert split_queries(list(reversed(qids)))[0] == list(reversed(dev))
