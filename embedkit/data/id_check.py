"""Duplicate-id detection over a stream of ids in 8 bytes an id.

A Python ``set`` of string ids costs ~70-100 bytes an id (~10 GB at 100M documents, on every torchrun
rank). :class:`IdHashes` keeps 64-bit hashes in sorted numpy runs instead, merged like a binary counter
(log-structured), and checks each batch of new ids against them with ``searchsorted``. A hash hit only
says "maybe": the caller confirms it on the real ids (see :class:`~embedkit.data.corpus.Corpus`), so a
hash collision never reports a false duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class IdHashes:
    """The hashes of every id added so far, in sorted runs whose sizes grow geometrically."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted int64 arrays, largest first
        self.count = 0

    @staticmethod
    def hashes(ids: Sequence[str]) -> np.ndarray:
        """Python's string hash: salted per process, so only compare hashes made in the same process."""
        return np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))

    def seen(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``hashes`` were added before (possibly a collision of different ids)."""
        found = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            where = np.searchsorted(run, hashes).clip(max=len(run) - 1)
            found |= run[where] == hashes
        return found

    def add(self, hashes: np.ndarray) -> None:
        run = np.sort(hashes)
        while self._runs and len(self._runs[-1]) <= len(run):
            run = np.sort(np.concatenate([self._runs.pop(), run]), kind="stable")  # two sorted runs: linear
        self._runs.append(run)
        self.count += len(hashes)

    @property
    def nbytes(self) -> int:
        return sum(run.nbytes for run in self._runs)
