"""What the two colbert backends share: an index searched with padded query token matrices.

``plaid`` (fast-plaid, approximate) and ``exact`` (brute-force MaxSim) each score a padded
``(num_queries, longest query, dim)`` array; this base pads the encoder's per-query arrays.
"""

from __future__ import annotations

import abc

import numpy as np

from embedkit.index.base import Index


def pad_queries(queries: list[np.ndarray]) -> np.ndarray:
    """(num_queries, longest query, dim); zero rows (models without query expansion) add 0 to every score."""
    longest = max(len(v) for v in queries)
    q = np.zeros((len(queries), longest, queries[0].shape[1]), dtype=np.float32)
    for i, v in enumerate(queries):
        q[i, :len(v)] = v
    return q


class MultiVectorIndex(Index):
    """A colbert index folder; subclasses score padded query token matrices."""

    @property
    def settings(self) -> dict:
        return self.manifest.settings

    def search_encoded(self, queries: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions), each (num_queries, k), of queries' token vectors (each (tokens_i, dim));
        position -1 where nothing was found."""
        if not queries:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return self._search_padded(pad_queries(queries), k)

    @abc.abstractmethod
    def _search_padded(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) of ``q``, (num_queries, longest query, dim)."""
