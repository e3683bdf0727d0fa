"""Exact (brute-force) late-interaction search: every query token against every document token."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOKENS = "tokens.npy"     # (total document tokens, dim) float16, documents one after another
LENGTHS = "lengths.npy"   # (num_documents,) int32: tokens per document


def maxsim_scores(queries: np.ndarray, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """ColBERT scores: for each query token its best document token, summed over query tokens.

    Args:
        queries: (num_queries, query_tokens, dim)
        tokens: (sum(lengths), dim), the documents' token vectors concatenated in order
        lengths: (num_documents,), every entry at least 1

    Returns:
        (num_queries, num_documents)

    >>> q = np.array([[[1.0, 0.0], [0.0, 1.0]]])              # one query, two tokens
    >>> t = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])     # doc 0: tokens 0-1, doc 1: token 2
    >>> maxsim_scores(q, t, np.array([2, 1])).tolist()
    [[1.5, 1.0]]
    """
    nq, qt, dim = queries.shape
    sim = queries.reshape(nq * qt, dim).astype(np.float32) @ tokens.astype(np.float32).T  # (nq * qt, total)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    best = np.maximum.reduceat(sim, starts, axis=1)  # (nq * qt, num_documents)
    return best.reshape(nq, qt, -1).sum(axis=1)  # (nq, num_documents)


def write_exact(folder: Path, parts: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """Concatenate (tokens, lengths) parts into ``tokens.npy`` / ``lengths.npy``; return the document count."""
    dim = next((t.shape[1] for t, _ in parts if t.ndim == 2 and t.size), 0)
    lengths = np.concatenate([np.asarray(n, dtype=np.int32) for _, n in parts]) if parts else np.zeros(0, np.int32)
    total = int(lengths.sum())
    out = np.lib.format.open_memmap(folder / TOKENS, mode="w+", dtype=np.float16, shape=(total, dim))
    start = 0
    for tokens, _ in parts:
        out[start:start + len(tokens)] = tokens
        start += len(tokens)
    out.flush()
    del out
    np.save(folder / LENGTHS, lengths)
    return len(lengths)


def exact_topk(queries: np.ndarray, tokens: np.ndarray, lengths: np.ndarray, k: int,
               chunk_tokens: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, positions) by exact MaxSim, reading the documents in chunks of whole documents.

    Args:
        queries: (num_queries, query_tokens, dim); tokens: (sum(lengths), dim); lengths: (num_documents,)

    Returns:
        scores (num_queries, k) float32 and positions (num_queries, k) int64; -1 where fewer than k documents.

    >>> q = np.array([[[1.0, 0.0], [0.0, 1.0]]])                          # one query, two tokens
    >>> t = np.array([[0.5, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, 1.0]])  # documents of 1, 2 and 1 tokens
    >>> scores, positions = exact_topk(q, t, np.array([1, 2, 1]), k=4, chunk_tokens=2)
    >>> scores.tolist(), positions.tolist()
    ([[1.5, 1.0, 0.5, -inf]], [[1, 2, 0, -1]])
    """
    nq = len(queries)
    best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
    best_p = np.zeros((nq, 0), dtype=np.int64)
    ends = np.cumsum(lengths)
    doc = 0
    while doc < len(lengths):
        start_tok = int(ends[doc - 1]) if doc else 0
        last = int(np.searchsorted(ends, start_tok + chunk_tokens, side="right"))
        last = max(last, doc + 1)  # a document longer than the chunk still goes alone
        scores = maxsim_scores(queries, np.asarray(tokens[start_tok:int(ends[last - 1])]), lengths[doc:last])
        best_s = np.concatenate([best_s, scores.astype(np.float32)], axis=1)  # (nq, kept + chunk docs)
        best_p = np.concatenate([best_p, np.broadcast_to(np.arange(doc, last), scores.shape)], axis=1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(best_s, keep, axis=1)
            best_p = np.take_along_axis(best_p, keep, axis=1)
        doc = last
    order = np.argsort(-best_s, axis=1, kind="stable")
    scores, positions = np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_p, order, axis=1)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        positions = np.pad(positions, ((0, 0), (0, pad)), constant_values=-1)
    return scores, positions
