"""Dense indexes with a compressed first pass and full-precision rescoring (``index.quantization``,
``index.rescore_multiplier``, ``index.shortlist_dim``), as sentence-transformers' ``quantize_embeddings`` /
``semantic_search_faiss`` teach it:

- the first pass is a FAISS index over int8 codes (scalar quantizer, per-dimension min/max ranges), bits
  (binary index, Hamming distance) or float32, optionally over the first ``shortlist_dim`` dimensions only
  (Matryoshka models), flat or HNSW;
- ``k * rescore_multiplier`` candidates are rescored with the full query against the full document vectors,
  ``vectors.npy`` in the index folder, memory-mapped: only the candidates' rows are read, so what stays resident
  is the first-pass index (1/4 of float32 for int8, 1/32 for binary).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.config import IndexSettings
from embedkit.index.base import Index
from embedkit.index.encode import Shard
from embedkit.models.encoder import Encoder

logger = logging.getLogger(__name__)

VECTORS = "vectors.npy"   # (num_documents, dim) float32: what candidates are rescored with
FIRST_PASS = "index.faiss"


def first_dims(vectors: np.ndarray, dim: int | None, normalize: bool) -> np.ndarray:
    """The first ``dim`` dimensions (all when None), L2-renormalised for cosine models (a Matryoshka prefix is
    trained as a unit vector), float32 and contiguous for FAISS. (n, full dim) -> (n, dim)."""
    out = np.ascontiguousarray(vectors[:, :dim] if dim else vectors, dtype=np.float32)
    if normalize and dim:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


@dataclass(frozen=True)
class FloatQuantizer:
    """float32 first pass (used with a shortlist: the first dimensions, exact or HNSW)."""

    name: str = "none"
    binary: bool = False

    def factory(self, hnsw_m: int | None) -> str:
        return "Flat" if hnsw_m is None else f"HNSW{hnsw_m}"

    def new_index(self, dim: int, hnsw_m: int | None, sample: Callable[[], np.ndarray]) -> tuple[Any, dict]:
        """An empty first-pass index: exact, or HNSW with ``hnsw_m`` neighbours."""
        import faiss

        factory = self.factory(hnsw_m)
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(sample())
        return index, {"factory": factory}

    def add(self, index: Any, vectors: np.ndarray) -> None:
        index.add(vectors)

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return index.search(queries, k)

    def read(self, path: Path) -> Any:
        import faiss

        return faiss.read_index(str(path))

    def write(self, index: Any, path: Path) -> None:
        import faiss

        faiss.write_index(index, str(path))


@dataclass(frozen=True)
class Int8Quantizer(FloatQuantizer):
    """One byte per dimension: FAISS's 8-bit scalar quantizer trained with per-dimension min/max on a sample
    (the ranges ``quantize_embeddings(..., "int8", calibration_embeddings=sample)`` computes); queries stay
    float32 and are scored against the decoded codes."""

    name: str = "int8"

    def factory(self, hnsw_m: int | None) -> str:
        return "SQ8" if hnsw_m is None else f"HNSW{hnsw_m},SQ8"

    def new_index(self, dim: int, hnsw_m: int | None, sample: Callable[[], np.ndarray]) -> tuple[Any, dict]:
        """An empty first-pass index: exact, or HNSW with ``hnsw_m`` neighbours."""
        import faiss

        index, recorded = super().new_index(dim, hnsw_m, sample)
        storage = getattr(index, "storage", None)
        sq = faiss.downcast_index(storage).sq if storage is not None else faiss.downcast_index(index).sq
        trained = faiss.vector_to_array(sq.trained)  # (2 * dim,): per-dimension minimum, then max - min
        ranges = np.stack([trained[:dim], trained[:dim] + trained[dim:]])  # (2, dim), as sentence-transformers'
        recorded["int8_ranges"] = ranges.tolist()
        return index, recorded


@dataclass(frozen=True)
class BinaryQuantizer(FloatQuantizer):
    """One bit per dimension (``x > 0``, packed as ``np.packbits``, i.e. sentence-transformers' ubinary) in a FAISS
    binary index; first-pass scores are ``1 - 2 * hamming / bits`` (the cosine of the sign vectors)."""

    name: str = "binary"
    binary: bool = True

    def new_index(self, dim: int, hnsw_m: int | None, sample: Callable[[], np.ndarray]) -> tuple[Any, dict]:
        """An empty first-pass index: exact, or HNSW with ``hnsw_m`` neighbours."""
        import faiss

        bits = 8 * math.ceil(dim / 8)  # packbits pads the last byte with zeros
        index = faiss.IndexBinaryFlat(bits) if hnsw_m is None else faiss.IndexBinaryHNSW(bits, hnsw_m)
        return index, {"factory": f"Binary{super().factory(hnsw_m)}{bits}"}

    def add(self, index: Any, vectors: np.ndarray) -> None:
        index.add(np.packbits(vectors > 0, axis=1))  # (n, bits / 8) uint8

    def search(self, index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances, positions = index.search(np.packbits(queries > 0, axis=1), k)
        return 1 - 2 * distances.astype(np.float32) / index.d, positions

    def read(self, path: Path) -> Any:
        import faiss

        return faiss.read_index_binary(str(path))

    def write(self, index: Any, path: Path) -> None:
        import faiss

        faiss.write_index_binary(index, str(path))


FLOAT, INT8, BINARY = FloatQuantizer(), Int8Quantizer(), BinaryQuantizer()


def _quantizer(name: str) -> FloatQuantizer:
    from embedkit.index.registry import get_quantizer

    return get_quantizer(name)


def build_quantized(shards: list[Shard], dim: int, settings: IndexSettings, hnsw_m: int | None, folder: Path,
                    normalize: bool, sample: Callable[[], np.ndarray]) -> dict:
    """Stream the shards into the first-pass index and into ``vectors.npy`` (never all vectors in memory);
    ``sample`` draws the vectors a quantizer is calibrated on (int8 only)."""
    from embedkit.index.registry import check_quantization

    check_quantization(settings, "dense", dim)
    quantizer = _quantizer(settings.quantization)
    short = settings.shortlist_dim if settings.shortlist_dim and settings.shortlist_dim < dim else None
    total = sum(s.count for s in shards)
    index, recorded = quantizer.new_index(short or dim, hnsw_m,
                                          lambda: first_dims(sample(), short, normalize))
    full = np.lib.format.open_memmap(folder / VECTORS, mode="w+", dtype=np.float32, shape=(total, dim))
    start = 0
    for shard in shards:
        vectors = np.asarray(shard.embeddings(mmap=False), dtype=np.float32)  # (shard.count, dim)
        quantizer.add(index, first_dims(vectors, short, normalize))
        full[start:start + len(vectors)] = vectors
        start += len(vectors)
    full.flush()
    del full
    quantizer.write(index, folder / FIRST_PASS)
    logger.info("%s first pass (%s) over %d vectors", quantizer.name, recorded["factory"], total)
    return {**recorded, "quantization": quantizer.name, "rescore_multiplier": settings.rescore_multiplier,
            "shortlist_dim": short, "ef_search": settings.faiss.ef_search, "rescore_vectors": VECTORS}


def _rewrite_vectors(folder: Path, vectors: np.ndarray) -> None:
    tmp = folder / (VECTORS + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(vectors, dtype=np.float32))
    tmp.replace(folder / VECTORS)


def append_quantized(folder: Path, settings: dict, normalize: bool, vectors: np.ndarray) -> None:
    """Add (n, dim) vectors after the last position: codes with the recorded ranges, rows to vectors.npy."""
    quantizer = _quantizer(settings["quantization"])
    index = quantizer.read(folder / FIRST_PASS)
    quantizer.add(index, first_dims(np.asarray(vectors, np.float32), settings.get("shortlist_dim"), normalize))
    quantizer.write(index, folder / FIRST_PASS)
    old = np.load(folder / VECTORS, mmap_mode="r")
    _rewrite_vectors(folder, np.concatenate([old, np.asarray(vectors, np.float32)]))


def remove_quantized(folder: Path, settings: dict, normalize: bool, positions: np.ndarray,
                     chunk: int = 65536) -> None:
    """Drop rows by position and refill the first pass from the kept vectors (its trained ranges stay)."""
    quantizer = _quantizer(settings["quantization"])
    index = quantizer.read(folder / FIRST_PASS)
    kept = np.delete(np.load(folder / VECTORS, mmap_mode="r"), positions, axis=0)  # (n - removed, dim)
    index.reset()
    for start in range(0, len(kept), chunk):
        quantizer.add(index, first_dims(kept[start:start + chunk], settings.get("shortlist_dim"), normalize))
    quantizer.write(index, folder / FIRST_PASS)
    _rewrite_vectors(folder, kept)


class QuantizedIndex(Index):
    """A compressed first pass plus memory-mapped full vectors. ``rescore`` (on by default) can be turned off to
    see the first pass alone (the benchmark does)."""

    def __init__(self, folder: str | Path, encoder: Encoder | None = None, rescore: bool = True):
        super().__init__(folder, encoder)
        settings = self.manifest.settings
        self.quantizer = _quantizer(settings["quantization"])
        self.first_pass = self.quantizer.read(self.folder / FIRST_PASS)
        hnsw = getattr(self.first_pass, "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = settings.get("ef_search", 128)
        self.vectors = np.load(self.folder / settings["rescore_vectors"], mmap_mode="r")  # (n, dim), on disk
        self.shortlist_dim = settings.get("shortlist_dim")
        self.rescore_multiplier = int(settings["rescore_multiplier"])
        self.rescore = rescore

    def description(self) -> dict[str, Any]:
        return {**super().description(), "quantization": self.quantizer.name, "shortlist_dim": self.shortlist_dim,
                "rescore_multiplier": self.rescore_multiplier if self.rescore else None}

    def search_encoded(self, queries: np.ndarray, k: int, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) of (num_queries, dim) query vectors, each (num_queries, min(k, n))."""
        n = self.first_pass.ntotal
        k = min(k, n)
        depth = min(n, k * self.rescore_multiplier) if self.rescore else k
        queries = np.asarray(queries, dtype=np.float32)
        scores, positions = [], []
        for start in range(0, len(queries), batch):
            q = queries[start:start + batch]  # (b, dim)
            s, p = self.quantizer.search(self.first_pass, first_dims(q, self.shortlist_dim, self.manifest.normalized),
                                         depth)  # each (b, depth)
            if self.rescore:
                s, p = self._rescore(q, p, k)
            scores.append(s)
            positions.append(p)
        if not scores:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return np.concatenate(scores), np.concatenate(positions)  # each (num_queries, k)

    def _rescore(self, q: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Full-precision inner products of ``q`` (b, dim) with its candidates (b, depth); the best k of each."""
        b, depth = candidates.shape
        rows = np.unique(candidates[candidates >= 0])  # sorted: the memory map is read in file order
        if not len(rows):
            return np.full((b, k), -np.inf, np.float32), np.full((b, k), -1, np.int64)
        stored = np.asarray(self.vectors[rows], dtype=np.float32)  # (unique candidates, dim)
        where = np.searchsorted(rows, np.clip(candidates, 0, None))  # (b, depth): row of each candidate
        exact = np.einsum("bd,bcd->bc", q, stored[where])  # (b, depth)
        exact[candidates < 0] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]  # (b, k)
        return np.take_along_axis(exact, order, 1), np.take_along_axis(candidates, order, 1)

