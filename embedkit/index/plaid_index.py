"""The ``plaid`` backend: multi-vector (ColBERT) documents compressed into a PLAID index (fast-plaid).

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

import numpy as np

from embedkit.config import IndexSettings, PlaidConfig
from embedkit.errors import EmbedkitError
from embedkit.index.base import DocumentStore, IndexManifest
from embedkit.index.encode import Shard
from embedkit.index.multivector import MultiVectorIndex
from embedkit.models.encoder import Encoder

logger = logging.getLogger(__name__)

PLAID_DIR = "plaid"  # fast-plaid deletes every *.json / *.npy in its folder on create: keep it apart


@dataclass
class PlaidOptions(PlaidConfig):
    """The recipe's ``index.plaid`` options plus the device fast-plaid runs on."""

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


def shard_documents(shards: list[Shard]) -> list[np.ndarray]:
    """Every document's token vectors, each (tokens_i, dim), in shard order."""
    return [d for s in shards for d in _shard_documents(s)]


class PlaidIndex(MultiVectorIndex):
    def __init__(self, folder: str | Path, encoder: Encoder | None = None):
        super().__init__(folder, encoder)
        self.plaid = _fast_plaid(self.folder, PlaidOptions())

    def _search_padded(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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


class PlaidBackend:
    name = "plaid"
    kind = "colbert"

    def build(self, shards: list[Shard], folder: Path, settings: IndexSettings, dim: int) -> dict:
        options = PlaidOptions(**vars(settings.plaid))
        docs = shard_documents(shards)
        if not docs:
            raise EmbedkitError("no documents to index")
        _fast_plaid(folder, options).create(
            documents_embeddings=_torch_docs(docs), kmeans_niters=options.kmeans_niters, nbits=options.nbits,
            seed=options.seed, use_triton_kmeans=False, start_from_scratch=0)
        return vars(settings.plaid).copy()

    def open(self, folder: Path, encoder: Encoder | None) -> PlaidIndex:
        return PlaidIndex(folder, encoder)

    def append(self, folder: Path, manifest: IndexManifest, vectors: list[np.ndarray], store: DocumentStore) -> None:
        """Ids continue after the last position; centroids are kept (recall on the new documents can be a little
        lower than after a rebuild)."""
        settings = manifest.settings
        options = PlaidOptions(kmeans_niters=settings.get("kmeans_niters", 4), seed=settings.get("seed", 42))
        _fast_plaid(folder, options).update(
            documents_embeddings=_torch_docs(vectors), kmeans_niters=options.kmeans_niters, seed=options.seed,
            start_from_scratch=0, buffer_size=1, use_triton_kmeans=False)

    def remove(self, folder: Path, manifest: IndexManifest, positions: np.ndarray, store: DocumentStore) -> None:
        """fast-plaid's delete: the remaining documents are renumbered in order, like the document store."""
        _fast_plaid(folder, PlaidOptions()).delete(subset=[int(p) for p in positions])


BACKEND = PlaidBackend()
