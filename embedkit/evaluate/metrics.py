"""Retrieval metrics through pytrec_eval, as BEIR computes them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, Literal

from embedkit.errors import EmbedkitError

Run = dict[str, dict[str, float]]

METRIC_KEYS = ("ndcg@10", "recall@100", "mrr@10", "map@100")  # the names at the default depth, k = 100


def metric_keys(k: int = 100) -> tuple[str, str, str, str]:
    """The metrics a run retrieved to depth ``k`` is scored with, named by the depth they measure:
    nDCG and MRR at 10 (at ``k`` when fewer were retrieved), recall and MAP at ``k``.

    >>> metric_keys(100), metric_keys(5)
    (('ndcg@10', 'recall@100', 'mrr@10', 'map@100'), ('ndcg@5', 'recall@5', 'mrr@5', 'map@5'))
    """
    if k < 1:
        raise EmbedkitError(f"k must be at least 1, got {k}")
    top = min(10, k)
    return f"ndcg@{top}", f"recall@{k}", f"mrr@{top}", f"map@{k}"


def depth_of(result: Mapping[str, Any]) -> int | None:
    """The depth ``k`` a results JSON was retrieved to: its ``k``, or for files written before ``k`` was
    recorded, the depth in its ``recall@N`` key."""
    k = result.get("k")
    if isinstance(k, int) and not isinstance(k, bool):
        return k
    depths = [int(key.split("@", 1)[1]) for key in result if key.startswith("recall@") and key[7:].isdigit()]
    return max(depths) if depths else None

Protocol = Literal["beir", "mteb"]
PROTOCOLS: tuple[str, ...] = ("beir", "mteb")

# Datasets whose MTEB task sets ``ignore_identical_ids = True`` (mteb 2.26: ArguAna, QuoraRetrieval,
# FiQA2018, FEVER, MSMARCO); every other MTEB task scores a hit on the query's own id like any other.
MTEB_IGNORES_IDENTICAL_IDS: frozenset[str] = frozenset({"arguana", "quora", "fiqa", "fever", "msmarco"})


def drops_self_hits(protocol: str, dataset: str) -> bool:
    """Whether hits on the query's own id are removed before scoring under ``protocol``.

    ``beir`` (BEIR's ``EvaluateRetrieval``, the default) removes them on every set; ``mteb`` only on
    the tasks that opt in. ``dataset`` is a registry name (``beir/arguana``) or a folder name.

    >>> drops_self_hits("beir", "beir/scifact"), drops_self_hits("mteb", "beir/scifact")
    (True, False)
    >>> drops_self_hits("mteb", "beir/arguana")
    True
    """
    if protocol not in PROTOCOLS:
        raise EmbedkitError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol == "beir" or PurePosixPath(dataset.lower()).name in MTEB_IGNORES_IDENTICAL_IDS


def drop_self_hits(run: Run) -> Run:
    """Remove hits whose document id equals the query id."""
    return {qid: {did: s for did, s in docs.items() if did != qid} for qid, docs in run.items()}


def apply_self_hit_policy(run: Run, protocol: str, dataset: str, k: int) -> tuple[Run, dict[str, Any]]:
    """Cut ``run`` (retrieved to depth ``k + 1``) to ``k`` hits per query under ``protocol``.

    Returns the run and what the results JSON records: the protocol, whether self-hits were
    dropped, and how many queries had their own id among the hits.

    >>> apply_self_hit_policy({"q": {"q": 3.0, "a": 2.0, "b": 1.0}}, "beir", "x", 2)
    ({'q': {'a': 2.0, 'b': 1.0}}, {'protocol': 'beir', 'dropped': True, 'queries_with_self_hit': 1})
    """
    drop = drops_self_hits(protocol, dataset)
    info = {"protocol": protocol, "dropped": drop,
            "queries_with_self_hit": sum(1 for qid, docs in run.items() if qid in docs)}
    return top_k(drop_self_hits(run) if drop else run, k), info


def top_k(run: Run, k: int) -> Run:
    return {qid: dict(sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:k]) for qid, docs in run.items()}


def evaluate_run(qrels: Mapping[str, Mapping[str, int]], run: Run, per_query: bool = False, k: int = 100) -> dict:
    """The :func:`metric_keys` of depth ``k`` (nDCG@10, Recall@k, MRR@10, MAP@k) averaged over the judged
    queries; ``run`` holds at most ``k`` hits per query.

    Queries in the qrels that the run misses count as zero, as in pytrec_eval's BEIR usage
    (pytrec_eval only scores queries present in the run, so missing ones are added empty).

    >>> evaluate_run({"q": {"d1": 1}}, {"q": {"d1": 2.0, "d2": 1.0}})["ndcg@10"]
    1.0
    """
    import pytrec_eval

    qrels = {q: dict(d) for q, d in qrels.items()}
    run = {q: dict(run.get(q, {})) for q in qrels}
    # pytrec_eval drops queries with no hits; a dummy hit that is never relevant keeps them scored.
    for qid, docs in run.items():
        if not docs:
            docs["__embedkit_no_hit__"] = -1e9
    ndcg, recall, mrr, map_ = keys = metric_keys(k)
    top = min(10, k)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{top}", f"recall.{k}", f"map_cut.{k}"})
    scores = evaluator.evaluate(run)
    mrr_eval = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"})
    mrr_scores = mrr_eval.evaluate(top_k(run, top))
    table = {
        ndcg: {q: s[f"ndcg_cut_{top}"] for q, s in scores.items()},
        recall: {q: s[f"recall_{k}"] for q, s in scores.items()},
        map_: {q: s[f"map_cut_{k}"] for q, s in scores.items()},
        mrr: {q: s["recip_rank"] for q, s in mrr_scores.items()},
    }
    n = len(qrels)
    result: dict = {key: (sum(table[key].values()) / n if n else 0.0) for key in keys}
    if per_query:
        result["per_query"] = table
    return result


def write_trec_run(run: Run, path, tag: str = "embedkit") -> None:
    with open(path, "w", encoding="utf-8") as f:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))
            for rank, (did, score) in enumerate(ranked, start=1):
                f.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")
