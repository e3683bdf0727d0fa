"""Dense indexes with FAISS: exact inner product (flat), HNSW, or IVF-PQ, from a factory string."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from embedkit.config import FaissConfig, IndexSettings
from embedkit.errors import EmbedkitError
from embedkit.index.base import DocumentStore, Index, IndexManifest
from embedkit.index.encode import Shard
from embedkit.models.encoder import Encoder

logger = logging.getLogger(__name__)

FaissType = Literal["flat", "hnsw", "ivfpq"]


@dataclass
class FaissOptions(FaissConfig):
    """The recipe's ``index.faiss`` options plus which FAISS index (the backend name)."""

    index_type: FaissType = "flat"

    def factory(self, dim: int, num_vectors: int) -> str:
        if self.index_type == "flat":
            return "Flat"
        if self.index_type == "hnsw":
            return f"HNSW{self.hnsw_m}"
        # k-means needs ~39 training points per list: cap by the training sample, not the corpus
        trained_on = min(num_vectors, self.train_sample)
        nlist = self.nlist or max(1, min(int(4 * math.sqrt(num_vectors)), trained_on // 39 or 1))
        pq_m = self.pq_m or max(m for m in range(1, dim + 1) if dim % m == 0 and m <= max(1, dim // 4))
        if dim % pq_m:
            raise EmbedkitError(f"index.faiss.pq_m (--pq-m) {pq_m} must divide the embedding size {dim}")
        return f"IVF{nlist},PQ{pq_m}"


def _sample_for_training(shards: list[Shard], limit: int, seed: int = 0) -> np.ndarray:
    total = sum(s.count for s in shards)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(total, size=min(limit, total), replace=False))
    parts, start = [], 0
    for shard in shards:
        local = keep[(keep >= start) & (keep < start + shard.count)] - start
        if len(local):
            parts.append(np.asarray(shard.embeddings()[local], dtype=np.float32))
        start += shard.count
    return np.concatenate(parts)  # (min(limit, total), dim)


def build_faiss(shards: list[Shard], dim: int, options: FaissOptions, folder: Path) -> dict:
    """Fill a FAISS index from encoded shards (training IVF-PQ on a sample) and write ``index.faiss``."""
    import faiss

    total = sum(s.count for s in shards)
    if options.index_type == "ivfpq" and total < 256:  # 8-bit PQ codebooks need 256 training vectors
        raise EmbedkitError(f"backend ivfpq needs at least 256 documents to train on, got {total}; use flat")
    factory = options.factory(dim, total)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and hasattr(faiss.downcast_index(ivf), "do_polysemous_training"):
        # The factory turns on polysemous training, which only reorders PQ codes for Hamming pre-filtering
        # (unused here: polysemous_ht stays 0) and made training ~8x slower in our measurements.
        faiss.downcast_index(ivf).do_polysemous_training = False
    if not index.is_trained:
        sample = _sample_for_training(shards, options.train_sample)
        logger.info("training %s on %d vectors", factory, len(sample))
        index.train(sample)
    for shard in shards:
        index.add(np.ascontiguousarray(shard.embeddings(mmap=False), dtype=np.float32))
    faiss.write_index(index, str(folder / "index.faiss"))
    return {"factory": factory, "nprobe": options.nprobe, "ef_search": options.ef_search}


class FaissIndex(Index):
    """A dense index: FAISS file + document store + manifest. Search needs the model's query encoder."""

    def __init__(self, folder: str | Path, encoder: Encoder | None = None, mmap: bool = False):
        import faiss

        super().__init__(folder, encoder)
        if self.manifest.backend not in get_args(FaissType):
            raise EmbedkitError(f"{folder} is a {self.manifest.backend} index, not a FAISS one")
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            self.faiss = faiss.read_index(str(self.folder / "index.faiss"), flags)
        except RuntimeError:
            # Flat and HNSW indexes cannot be memory-mapped; they load whole.
            self.faiss = faiss.read_index(str(self.folder / "index.faiss"))
        settings = self.manifest.settings
        if hasattr(self.faiss, "nprobe"):
            self.faiss.nprobe = settings.get("nprobe", 32)
        hnsw = getattr(self.faiss, "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = settings.get("ef_search", 128)

    def search_encoded(self, vectors: np.ndarray, k: int, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) of query vectors, (num_queries, dim), each (num_queries, min(k, ntotal))."""
        k = min(k, self.faiss.ntotal)
        scores, positions = [], []
        for start in range(0, len(vectors), batch):
            s, p = self.faiss.search(np.ascontiguousarray(vectors[start:start + batch], dtype=np.float32), k)
            scores.append(s)
            positions.append(p)
        return np.concatenate(scores), np.concatenate(positions)  # each (num_queries, k)


def _vectors(index) -> np.ndarray:
    """Every stored vector, in position order (IVF-PQ: as reconstructed from its codes)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.make_direct_map()
    return index.reconstruct_n(0, index.ntotal)  # (ntotal, dim)


class FaissBackend:
    """``flat``, ``hnsw`` or ``ivfpq``: dense vectors in one FAISS file."""

    kind = "dense"

    def __init__(self, name: FaissType):
        self.name = name

    def build(self, shards: list[Shard], folder: Path, settings: IndexSettings, dim: int) -> dict:
        from embedkit.index.registry import compresses

        options = FaissOptions(**vars(settings.faiss), index_type=self.name)
        if compresses(settings):
            from embedkit.index.quantized import build_quantized

            def sample() -> np.ndarray:  # what int8 ranges are calibrated on
                return _sample_for_training(shards, options.train_sample)

            hnsw_m = None if self.name == "flat" else options.hnsw_m
            return build_quantized(shards, dim, settings, hnsw_m, folder, _normalized(shards), sample)
        return build_faiss(shards, dim, options, folder)

    def open(self, folder: Path, encoder: Encoder | None) -> FaissIndex:
        if _rescored(folder):
            from embedkit.index.quantized import QuantizedIndex

            return QuantizedIndex(folder, encoder)
        return FaissIndex(folder, encoder, mmap=True)  # IVF lists stay on disk; Flat/HNSW load whole

    def append(self, folder: Path, manifest: IndexManifest, vectors, store: DocumentStore) -> None:
        import faiss

        if _rescored(folder):
            from embedkit.index.quantized import append_quantized

            return append_quantized(folder, manifest.settings, manifest.normalized, vectors)
        index = faiss.read_index(str(folder / "index.faiss"))
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))  # IVF-PQ keeps its trained quantisers
        faiss.write_index(index, str(folder / "index.faiss"))

    def remove(self, folder: Path, manifest: IndexManifest, positions: np.ndarray, store: DocumentStore) -> None:
        """Rebuild from the kept vectors, so positions stay 0..n-1 in store order (FAISS ``remove_ids`` keeps
        the old labels for IVF and is not supported by HNSW)."""
        import faiss

        if _rescored(folder):
            from embedkit.index.quantized import remove_quantized

            return remove_quantized(folder, manifest.settings, manifest.normalized, positions)
        index = faiss.read_index(str(folder / "index.faiss"))
        kept = np.delete(_vectors(index), positions, axis=0)  # (n - len(positions), dim)
        fresh = faiss.index_factory(index.d, manifest.settings["factory"], faiss.METRIC_INNER_PRODUCT)
        if not fresh.is_trained:  # IVF-PQ: keep the trained quantisers
            index.reset()
            fresh = index
        fresh.add(np.ascontiguousarray(kept, dtype=np.float32))
        faiss.write_index(fresh, str(folder / "index.faiss"))


def _rescored(folder: Path) -> bool:
    """Whether the index in ``folder`` has a compressed first pass rescored with full vectors (its manifest
    names the file those are in)."""
    return bool(IndexManifest.load(folder).settings.get("rescore_vectors"))


def _normalized(shards: list[Shard]) -> bool:
    """Whether the encoded vectors are unit length (cosine models): a shortlist prefix is then renormalised."""
    first = next((s for s in shards if s.count), None)
    if first is None:
        return True
    sample = np.asarray(first.embeddings()[:16], dtype=np.float32)
    return bool(np.allclose(np.linalg.norm(sample, axis=1), 1.0, atol=1e-3))


FLAT, HNSW, IVFPQ = FaissBackend("flat"), FaissBackend("hnsw"), FaissBackend("ivfpq")
