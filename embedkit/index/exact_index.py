"""The ``exact`` backend: every document token vector kept (float16), queries scored by brute-force MaxSim.

Faster than PLAID to build and, on small corpora, to search, at the score PLAID approximates; see
``IndexSettings.auto_exact_max_documents`` for where ``auto`` switches to PLAID.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedkit.config import IndexSettings
from embedkit.index.base import DocumentStore, IndexManifest
from embedkit.index.encode import Shard
from embedkit.index.maxsim import LENGTHS, TOKENS, exact_topk, write_exact
from embedkit.index.multivector import MultiVectorIndex
from embedkit.models.encoder import Encoder


class ExactIndex(MultiVectorIndex):
    def __init__(self, folder: str | Path, encoder: Encoder | None = None, query_batch: int = 16):
        super().__init__(folder, encoder)
        self.query_batch = query_batch
        self.tokens = np.load(self.folder / TOKENS, mmap_mode="r")
        self.lengths = np.load(self.folder / LENGTHS)

    def _search_padded(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [exact_topk(q[i:i + self.query_batch], self.tokens, self.lengths, k)
                 for i in range(0, len(q), self.query_batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _rewrite(folder: Path, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
    tmp = folder / "exact-rewrite"
    tmp.mkdir(exist_ok=True)
    write_exact(tmp, parts)
    for name in (TOKENS, LENGTHS):
        (tmp / name).replace(folder / name)
    tmp.rmdir()


class ExactBackend:
    name = "exact"
    kind = "colbert"

    def build(self, shards: list[Shard], folder: Path, settings: IndexSettings, dim: int) -> dict:
        write_exact(folder, [(s.embeddings(), s.lengths()) for s in shards])
        return {}

    def open(self, folder: Path, encoder: Encoder | None) -> ExactIndex:
        return ExactIndex(folder, encoder)

    def append(self, folder: Path, manifest: IndexManifest, vectors: list[np.ndarray], store: DocumentStore) -> None:
        lengths = np.load(folder / LENGTHS)
        tokens = np.asarray(np.load(folder / TOKENS, mmap_mode="r"))
        new_tokens = np.concatenate(vectors) if vectors else np.zeros((0, tokens.shape[1]), np.float16)
        _rewrite(folder, [(tokens, lengths), (new_tokens, np.array([len(d) for d in vectors], np.int32))])

    def remove(self, folder: Path, manifest: IndexManifest, positions: np.ndarray, store: DocumentStore) -> None:
        lengths = np.load(folder / LENGTHS)
        tokens = np.asarray(np.load(folder / TOKENS, mmap_mode="r"))
        keep = np.ones(len(lengths), dtype=bool)
        keep[positions] = False
        owner = np.repeat(np.arange(len(lengths)), lengths)  # (total tokens,): the document of each token
        _rewrite(folder, [(tokens[keep[owner]], lengths[keep])])


BACKEND = ExactBackend()
