"""Retrievers composed from indexes: fusion of several searchers and first stage + reranker.

Each is a :class:`~embedkit.index.base.Searcher` (``search_positions`` / ``search``, ``description``, ``store``),
as an index is, so ``embedkit search``, ``embedkit eval`` and ``embedkit serve`` run one retrieve path whatever
it is made of. They are not indexes: nothing is added to or deleted from them, and they have no manifest of
their own (their ``searched_index`` has). Positions are the first searcher's document positions: fused
searchers must hold the same documents in the same order (indexes built from one corpus do; BM25 built from
an index's own store does by construction).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.config import EncodeSettings, RetrieveConfig
from embedkit.errors import EmbedkitError
from embedkit.index.base import DocumentStore, SearchedIndex, Searcher
from embedkit.index.registry import NO_MODEL
from embedkit.retrieve.fusion import fuse, get_fusion
from embedkit.retrieve.rerank import NO_RERANK, Reranker, load_reranker

logger = logging.getLogger(__name__)


def method_name(searcher: Searcher) -> str:
    """A short label: ``dense``, ``rrf(bm25,dense)``, ``colbert-rerank(dense)``."""
    return _label(searcher.description())


def _label(d: dict[str, Any]) -> str:
    if "parts" in d:
        return f"{d['method']}({','.join(_label(p) for p in d['parts'])})"
    if "first_stage" in d:
        return f"{d['method']}({_label(d['first_stage'])})"
    return d["method"]


def _to_arrays(rows: list[dict[int, float]], k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
    positions = np.full((len(rows), k), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        best = sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        for j, (pos, score) in enumerate(best):
            scores[i, j], positions[i, j] = score, pos
    return scores, positions  # each (num_queries, k)


def _rows(scores: np.ndarray, positions: np.ndarray) -> list[dict[int, float]]:
    return [{int(p): float(s) for s, p in zip(rs, rp) if p >= 0} for rs, rp in zip(scores, positions)]


def _same_documents(first: Sequence[str], other: Sequence[str]) -> bool:
    return len(first) == len(other) and all(a == b for a, b in zip(first, other))


class FusedSearcher(Searcher):
    """Several searchers over one corpus searched together and fused (RRF or weighted normalised scores)."""

    def __init__(self, parts: Sequence[Searcher], method: str = "rrf", weights: Sequence[float] | None = None,
                 rrf_k: float = 60, depth: int = 100):
        if len(parts) < 2:
            raise EmbedkitError("fusion needs at least two indexes")
        if weights is not None and len(weights) != len(parts):
            raise EmbedkitError(f"fusion weights: {len(weights)} given for {len(parts)} indexes "
                                "(one per index, the searched one first)")
        for part in parts[1:]:
            if not _same_documents(parts[0].store.ids, part.store.ids):
                raise EmbedkitError(f"cannot fuse {method_name(parts[0])} with {method_name(part)}: they do not hold "
                                    "the same documents in the same order (build both from the same corpus)")
        self.parts = list(parts)
        self.method, self.weights, self.rrf_k, self.depth = method, weights, rrf_k, depth

    @property
    def store(self) -> DocumentStore:
        return self.parts[0].store

    @property
    def searched_index(self) -> SearchedIndex:
        return self.parts[0].searched_index

    def description(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "parts": [p.description() for p in self.parts],
                             "depth": self.depth}
        d |= {"k": self.rrf_k} if get_fusion(self.method).uses_rrf_k else {}
        return d | ({"weights": list(self.weights)} if self.weights is not None else {})

    def part_runs(self, queries: list[str], depth: int) -> list[dict[int, dict[int, float]]]:
        """Each part's top-``depth`` as a run keyed by query number, then document position."""
        return [dict(enumerate(_rows(*part.search_positions(queries, depth)))) for part in self.parts]

    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        runs = self.part_runs(queries, max(k, self.depth))
        fused = fuse(self.method, runs, self.weights, self.rrf_k)
        return _to_arrays([fused.get(i, {}) for i in range(len(queries))], k)


class RerankedSearcher(Searcher):
    """A first stage's top ``top_n`` rescored by a reranker.

    When more than ``top_n`` hits are asked for, the rest follow in first-stage order with scores below
    every reranked one, so a deep run (Recall@100) keeps its tail.
    """

    def __init__(self, first: Searcher, reranker: Reranker, top_n: int = 100):
        if top_n < 1:
            raise EmbedkitError(f"rerank_top_n must be at least 1, got {top_n}")
        self.first, self.reranker, self.top_n = first, reranker, top_n

    @property
    def store(self) -> DocumentStore:
        return self.first.store

    @property
    def searched_index(self) -> SearchedIndex:
        return self.first.searched_index

    def description(self) -> dict[str, Any]:
        return {"method": f"{self.reranker.name}-rerank", "first_stage": self.first.description(),
                "top_n": self.top_n}

    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, positions = self.first.search_positions(queries, max(k, self.top_n))
        head = [row[row >= 0][:self.top_n] for row in positions]
        new_scores = self.reranker.score(queries, head, self.store)
        rows = []
        for cand, rescored, row_p in zip(head, new_scores, positions):
            row = {int(p): float(s) for p, s in zip(cand, rescored)}
            floor = min(row.values(), default=0.0) - 1.0
            tail = [int(p) for p in row_p[len(cand):] if p >= 0]
            row |= {p: floor - i for i, p in enumerate(tail)}
            rows.append(row)
        return _to_arrays(rows, k)


def configured_reranker(searcher: Searcher) -> Reranker | None:
    """The reranker of a retriever :func:`compose` made (reranking is its last stage), else ``None``."""
    return searcher.reranker if isinstance(searcher, RerankedSearcher) else None


def bm25_over(index: SearchedIndex) -> SearchedIndex:
    from embedkit.index.bm25_index import BM25Over

    return BM25Over(index)


def open_part(spec: str, first: SearchedIndex, settings: EncodeSettings | None = None) -> SearchedIndex:
    """``bm25`` (in memory, from ``first``'s documents) or an index folder (opened with its own model, at
    ``settings``' batch size and ColBERT library)."""
    if spec == NO_MODEL:
        return bm25_over(first)
    if not Path(spec).is_dir():
        raise EmbedkitError(f"fuse_with: {spec!r} is neither {NO_MODEL!r} nor an index folder")
    from embedkit.index.build import open_index

    settings = settings or EncodeSettings()
    return open_index(spec, settings=EncodeSettings(batch_size=settings.batch_size,
                                                    colbert_library=settings.colbert_library))


def compose(first: SearchedIndex, options: RetrieveConfig, settings: EncodeSettings | None = None,
            parts: Sequence[Searcher] | None = None) -> Searcher:
    """``first`` fused with ``options.fuse_with`` (or the already open ``parts``), then reranked; ``settings``
    encode for the fused indexes and the reranker (batch size, ColBERT library; the reranker's model backend,
    at ``options.rerank_batch_size``)."""
    settings = settings or EncodeSettings()
    searcher: Searcher = first
    if options.fuse_with or parts:
        parts = list(parts) if parts is not None else [open_part(s, first, settings) for s in options.fuse_with]
        searcher = FusedSearcher([first, *parts], options.fusion, options.weights, options.rrf_k,
                                 options.fusion_depth)
    if options.rerank != NO_RERANK:
        reranker = load_reranker(options.rerank, options.rerank_model, options.rerank_index,
                                 replace(settings, batch_size=options.rerank_batch_size))
        if reranker.stored is not None and not _same_documents(first.store.ids, stored_ids(options.rerank_index)):
            raise EmbedkitError(f"rerank_index {options.rerank_index}: not the same documents as the searched index")
        searcher = RerankedSearcher(searcher, reranker, options.rerank_top_n)
    return searcher


def stored_ids(folder: str | Path) -> Sequence[str]:
    return DocumentStore(Path(folder)).ids


def open_retriever(index_dir: str | Path, options: RetrieveConfig | None = None, model: str | None = None,
                   settings: EncodeSettings | None = None) -> Searcher:
    """The searched index with fusion and reranking as configured: what search, eval and serve query.
    ``settings`` encode the queries (batch size, ``model_backend``: the runtime of the query encoder's and a
    reranker's transformer, ``colbert_library``)."""
    from embedkit.index.build import open_index

    settings = settings or EncodeSettings()
    first = open_index(index_dir, model, settings)
    check_now = getattr(first.encoder, "check_now", None)  # a precision or model backend other than torch fp32
    if check_now is not None:
        check_now()  # export and check before the first query, so a miss stops here
    return compose(first, options or RetrieveConfig(), settings)
