"""Fusion of ranked lists from several retrievers over the same corpus.

Pure functions over runs ``{query_id: {doc_id: score}}`` (the shape pytrec_eval scores). Document keys
may be ids or index positions: nothing here looks inside them.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

Run = Mapping[Hashable, Mapping[Hashable, float]]
FusedRun = dict[Hashable, dict[Hashable, float]]


def _ranked(docs: Mapping[Hashable, float]) -> list[Hashable]:
    """Documents best first; ties keep the run's own order (a search result is already ranked)."""
    return [d for d, _ in sorted(docs.items(), key=lambda kv: -kv[1])]


def _check_weights(runs: Sequence[Run], weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * len(runs)
    if len(weights) != len(runs):
        raise ValueError(f"{len(weights)} weights for {len(runs)} runs")
    return [float(w) for w in weights]


def _weighted_sum(runs: Sequence[Run], weights: Sequence[float] | None,
                  per_query: Callable[[Mapping[Hashable, float]], dict[Hashable, float]]) -> FusedRun:
    """``sum_i w_i * per_query(run_i[q])[d]`` for every query and document any run returned."""
    fused: FusedRun = {}
    for run, weight in zip(runs, _check_weights(runs, weights)):
        for qid, docs in run.items():
            out = fused.setdefault(qid, {})
            for doc, value in per_query(docs).items():
                out[doc] = out.get(doc, 0.0) + weight * value
    return fused


def rrf(runs: Sequence[Run], k: float = 60, weights: Sequence[float] | None = None) -> FusedRun:
    """Reciprocal rank fusion (Cormack et al. 2009): ``score(d) = sum_i w_i / (k + rank_i(d))``.

    ``rank_i`` starts at 1; a document a run did not return adds nothing from that run. ``k`` damps the
    head of each list (60 in the paper). Queries missing from a run are fused from the runs that have them.

    >>> fused = rrf([{"q": {"a": 9.0, "b": 5.0}}, {"q": {"b": 0.7, "c": 0.2}}], k=1)
    >>> {d: round(s, 4) for d, s in fused["q"].items()}
    {'a': 0.5, 'b': 0.8333, 'c': 0.3333}
    """
    return _weighted_sum(runs, weights, lambda docs: {d: 1 / (k + r) for r, d in enumerate(_ranked(docs), start=1)})


def minmax(docs: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Scale one query's scores to [0, 1] (best 1, worst returned 0); all-equal scores become 1.

    >>> minmax({"a": 3.0, "b": 1.0, "c": 2.0})
    {'a': 1.0, 'b': 0.0, 'c': 0.5}
    """
    if not docs:
        return {}
    low, high = min(docs.values()), max(docs.values())
    if high == low:
        return {d: 1.0 for d in docs}
    return {d: (s - low) / (high - low) for d, s in docs.items()}


def weighted(runs: Sequence[Run], weights: Sequence[float] | None = None) -> FusedRun:
    """Normalised-score fusion: ``score(d) = sum_i w_i * minmax_i(d)``, scores min-max scaled per query
    and run (BM25 scores and cosines live on different scales); a document a run did not return counts
    as that run's worst (0).

    >>> fused = weighted([{"q": {"a": 10.0, "b": 0.0}}, {"q": {"b": 0.9, "c": 0.5}}], weights=[0.3, 0.7])
    >>> {d: round(s, 4) for d, s in fused["q"].items()}
    {'a': 0.3, 'b': 0.7, 'c': 0.0}
    """
    return _weighted_sum(runs, weights, minmax)


@dataclass(frozen=True)
class FusionMethod:
    """One way of fusing runs, and what else about it the callers need to know."""

    fuse: Callable[[Sequence[Run], Sequence[float] | None, float], FusedRun]  # (runs, weights, rrf_k)
    uses_rrf_k: bool = False       # rrf_k shapes its scores (and is recorded with it)
    tuned_in_eval: bool = False    # without given weights, embedkit eval chooses them on half of the queries


# the one place a fusion method is chosen by name
FUSIONS: dict[str, FusionMethod] = {
    "rrf": FusionMethod(lambda runs, weights, rrf_k: rrf(runs, rrf_k, weights), uses_rrf_k=True),
    "weighted": FusionMethod(lambda runs, weights, rrf_k: weighted(runs, weights), tuned_in_eval=True),
}


def get_fusion(method: str) -> FusionMethod:
    if method not in FUSIONS:
        raise ValueError(f"unknown fusion {method!r}; use one of {', '.join(FUSIONS)}")
    return FUSIONS[method]


def fuse(method: str, runs: Sequence[Run], weights: Sequence[float] | None = None, rrf_k: float = 60) -> FusedRun:
    return get_fusion(method).fuse(runs, weights, rrf_k)


def weight_grid(num_runs: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex with the given step (weights sum to 1).

    >>> weight_grid(2, 0.5)
    [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    """
    steps = round(1 / step)
    grid = [c for c in itertools.product(range(steps + 1), repeat=num_runs) if sum(c) == steps]
    return [tuple(round(i / steps, 10) for i in c) for c in grid]


def choose_weights(runs: Sequence[Run], score: Callable[[FusedRun], float], step: float = 0.1,
                   method: str = "weighted", rrf_k: float = 60) -> tuple[tuple[float, ...], float]:
    """The weights whose fused run scores best by ``score`` (e.g. mean nDCG@10 on dev queries).

    Ties go to the most even weights (closest to 1/n each), so a flat optimum does not pick an extreme.
    Returns (weights, their score).
    """
    n = len(runs)
    best: tuple[tuple[float, ...], float] | None = None
    for weights in sorted(weight_grid(n, step), key=lambda w: sum((x - 1 / n) ** 2 for x in w)):
        value = score(fuse(method, runs, weights, rrf_k))
        if best is None or value > best[1] + 1e-12:
            best = (weights, value)
    assert best is not None
    return best


def split_queries(query_ids: Sequence[str], dev_fraction: float = 0.5) -> tuple[list[str], list[str]]:
    """A deterministic (dev, test) split of query ids by a hash of each id, independent of their order.

    Weights are chosen on dev and reported on test, so the fused score is not tuned on what it reports.
    """
    dev, test = [], []
    for qid in query_ids:
        bucket = int(hashlib.sha1(str(qid).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (dev if bucket < dev_fraction else test).append(qid)
    return dev, test
