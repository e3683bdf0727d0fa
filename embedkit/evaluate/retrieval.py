"""Fusion and reranking inside ``embedkit eval``: compose the evaluated index as configured and, for weighted
fusion without given weights, choose them on a dev split of the queries and score the rest (evaluation's own
step: it scores runs with :mod:`embedkit.evaluate.metrics`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from embedkit.config import EncodeSettings, RetrieveConfig
from embedkit.evaluate.metrics import evaluate_run, top_k
from embedkit.index.base import SearchedIndex, Searcher
from embedkit.retrieve.fusion import choose_weights, get_fusion, split_queries
from embedkit.retrieve.rerank import NO_RERANK
from embedkit.retrieve.retriever import FusedSearcher, compose, method_name

logger = logging.getLogger(__name__)


def is_plain(options: RetrieveConfig | None) -> bool:
    return options is None or (not options.fuse_with and options.rerank == NO_RERANK)


def retriever_for_eval(index: SearchedIndex, options: RetrieveConfig, queries: dict[str, str],
                       qrels: dict[str, dict[str, int]], settings: EncodeSettings | None = None
                       ) -> tuple[Searcher, dict[str, str], dict[str, Any]]:
    """(retriever, the queries to score, what to record in the results JSON); ``settings`` encode for fused
    indexes and a reranker (batch size, ColBERT library).

    With a fusion method whose weights eval tunes (``fusion: weighted``) and no ``weights``, half of the judged
    queries (a hash split, see :func:`~embedkit.retrieve.fusion.split_queries`) choose the weights by nDCG@10 and
    only the other half is scored, so the reported number is not tuned on itself.
    """
    info: dict[str, Any] = {}
    tune = get_fusion(options.fusion).tuned_in_eval and options.weights is None and bool(options.fuse_with)
    if tune:
        fused = compose(index, replace(options, rerank=NO_RERANK), settings)
        assert isinstance(fused, FusedSearcher)
        dev_ids, test_ids = split_queries([q for q in queries if q in qrels])
        ids = index.store.ids
        runs = [{dev_ids[i]: {ids[p]: s for p, s in docs.items()} for i, docs in run.items()}
                for run in fused.part_runs([queries[q] for q in dev_ids], fused.depth)]
        dev_qrels = {q: qrels[q] for q in dev_ids}
        weights, dev_score = choose_weights(runs, lambda run: evaluate_run(dev_qrels, top_k(run, 10))["ndcg@10"],
                                            method=options.fusion, rrf_k=options.rrf_k)
        logger.info("fusion weights %s chosen on %d dev queries (nDCG@10 %.4f)", weights, len(dev_ids), dev_score)
        options = replace(options, weights=list(weights))
        queries = {q: queries[q] for q in test_ids}
        info |= {"chosen_weights": list(weights), "weights_chosen_on": f"{len(dev_ids)} dev queries",
                 "dev_ndcg@10": dev_score, "scored_queries": "test split (the other queries)"}
        parts = fused.parts[1:]
    else:
        parts = None
    retriever = compose(index, options, settings, parts=parts)
    info = {"method": method_name(retriever), "retriever": retriever.description()} | info
    return retriever, queries, info
