"""Multi-vector indexes: PLAID (fast-plaid) or exact MaxSim, over the same encoded shards.

PLAID is driven through ``fast_plaid.search.FastPlaid``, the engine behind ``pylate.indexes.PLAID``
(``use_fast=True``). PyLate's wrapper adds only two pickled id maps (``documents_ids_to_plaid_ids.pkl`` and
the reverse); embedkit does not need them: documents enter PLAID in DocumentStore order, so a PLAID id *is*
the position in ``doc_ids.jsonl``, and nothing embedkit writes or reads is a pickle. fast-plaid also pickles
raw embeddings for small indexes (``embeddings.npy``) and for its update buffer (``buffer.npy``); the
arguments below (``start_from_scratch=0``, ``buffer_size=1``) keep it from writing either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from embedkit.errors import EmbedkitError
from embedkit.index.base import DocumentStore, Index, IndexManifest
from embedkit.index.encode import Shard
from embedkit.index.maxsim import LENGTHS, TOKENS, exact_topk, write_exact

logger = logging.getLogger(__name__)

PLAID_DIR = "plaid"  # fast-plaid deletes every *.json / *.npy in its folder on create: keep it apart


@dataclass
class PlaidOptions:
    index_type: Literal["plaid", "exact"] = "plaid"
    nbits: int = 4                  # bits per residual dimension
    kmeans_niters: int = 4
    n_ivf_probe: int = 8            # search: centroids probed per query token
    n_full_scores: int = 4096       # search: candidates scored in full (decompressed MaxSim)
    seed: int = 42
    device: str | None = None       # None: CUDA when available, else CPU


def _shard_documents(shard: Shard) -> list[np.ndarray]:
    flat = shard.embeddings(mmap=False)  # (sum of tokens, dim) float16
    lengths = shard.lengths()
    if lengths is None:
        raise EmbedkitError(f"{shard.embeddings_path}: not a multi-vector shard (no lengths file)")
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _torch_docs(arrays: list[np.ndarray]) -> list:
    import torch

    return [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]  # each (tokens_i, dim)


def _fast_plaid(folder: Path, options: PlaidOptions):
    from fast_plaid import search

    return search.FastPlaid(index=str(folder / PLAID_DIR), device=options.device, low_memory=True)


def build_plaid(shards: list[Shard], options: PlaidOptions, folder: Path) -> dict:
    """Fill ``folder`` from encoded shards: a fast-plaid index, or the raw token vectors for exact search."""
    settings = {"index_type": options.index_type, "n_ivf_probe": options.n_ivf_probe,
                "n_full_scores": options.n_full_scores, "nbits": options.nbits,
                "kmeans_niters": options.kmeans_niters, "seed": options.seed}
    if options.index_type == "exact":
        write_exact(folder, [(s.embeddings(), s.lengths()) for s in shards])
        return settings
    docs = [d for s in shards for d in _shard_documents(s)]
    if not docs:
        raise EmbedkitError("no documents to index")
    _fast_plaid(folder, options).create(
        documents_embeddings=_torch_docs(docs), kmeans_niters=options.kmeans_niters, nbits=options.nbits,
        seed=options.seed, use_triton_kmeans=False, start_from_scratch=0)
    return settings


def add_to_plaid(folder: Path, settings: dict, docs: list[np.ndarray]) -> None:
    """Append documents (ids continue after the last position); centroids are kept, residuals reused."""
    if settings.get("index_type") == "exact":
        lengths = np.load(folder / LENGTHS)
        tokens = np.load(folder / TOKENS, mmap_mode="r")
        new_tokens = np.concatenate(docs) if docs else np.zeros((0, tokens.shape[1]), np.float16)
        parts = [(np.asarray(tokens), lengths), (new_tokens, np.array([len(d) for d in docs], np.int32))]
        tmp = folder / "exact-append"
        tmp.mkdir(exist_ok=True)
        write_exact(tmp, parts)
        del tokens
        for name in (TOKENS, LENGTHS):
            (tmp / name).replace(folder / name)
        tmp.rmdir()
        return
    options = PlaidOptions(kmeans_niters=settings.get("kmeans_niters", 4), seed=settings.get("seed", 42))
    _fast_plaid(folder, options).update(
        documents_embeddings=_torch_docs(docs), kmeans_niters=options.kmeans_niters, seed=options.seed,
        start_from_scratch=0, buffer_size=1, use_triton_kmeans=False)


class MultiVectorIndex(Index):
    """A colbert index folder: PLAID or exact token vectors + document store + manifest."""

    def __init__(self, folder: str | Path, encoder=None, query_batch: int = 16):
        self.folder = Path(folder)
        self.manifest = IndexManifest.load(self.folder)
        if self.manifest.kind != "colbert":
            raise EmbedkitError(f"{folder} is a {self.manifest.kind} index, not a colbert (PLAID) one")
        self.settings = self.manifest.settings
        self.exact = self.settings.get("index_type") == "exact"
        self.store = DocumentStore(self.folder)
        self.encoder = encoder
        self.query_batch = query_batch
        if self.exact:
            self.tokens = np.load(self.folder / TOKENS, mmap_mode="r")
            self.lengths = np.load(self.folder / LENGTHS)
        else:
            self.plaid = _fast_plaid(self.folder, PlaidOptions())

    def search_vectors(self, queries: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions), each (num_queries, k); position -1 where nothing was found."""
        if not queries:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        longest = max(len(v) for v in queries)
        q = np.zeros((len(queries), longest, queries[0].shape[1]), dtype=np.float32)
        for i, v in enumerate(queries):  # zero rows (models without query expansion) add 0 to every score
            q[i, :len(v)] = v  # (num_queries, query_length, dim)
        if self.exact:
            parts = [exact_topk(q[i:i + self.query_batch], self.tokens, self.lengths, k)
                     for i in range(0, len(q), self.query_batch)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        import torch

        n_full = max(int(self.settings.get("n_full_scores", 4096)), k)
        results = self.plaid.search(queries_embeddings=torch.from_numpy(q), top_k=k,
                                    n_ivf_probe=int(self.settings.get("n_ivf_probe", 8)), n_full_scores=n_full,
                                    show_progress=False)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        positions = np.full((len(q), k), -1, dtype=np.int64)
        for row, hits in enumerate(results):
            for col, (pid, score) in enumerate(hits[:k]):
                scores[row, col], positions[row, col] = score, pid
        return scores, positions

    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.encoder is None:
            raise EmbedkitError("this index was loaded without a model; pass one to search by text")
        return self.search_vectors(self.encoder.encode_queries(queries), k)
