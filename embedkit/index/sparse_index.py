"""Learned sparse indexes (kind sparse): ``sparse-exact`` scores every document by the dot product of sparse
vectors through an inverted index (``scipy.sparse``: the query's terms times each term's postings), and ``seismic``
searches approximately with Seismic (``pyseismic-lsr``, Bruch et al. 2024), built for learned sparse vectors.

Both keep the documents' vectors as one CSR matrix (``sparse_indptr.npy``, ``sparse_indices.npy`` term ids,
``sparse_values.npy`` float32 weights; no pickle), which also serves ``--explain`` (the terms a hit matched),
adding and deleting documents (Seismic's index is rebuilt from it) and the index's statistics.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.config import IndexSettings, SeismicConfig
from embedkit.index.base import DocumentStore, Index, IndexManifest
from embedkit.index.encode import Shard
from embedkit.models.encoder import Encoder

logger = logging.getLogger(__name__)

PARTS = ("indptr", "indices", "values")
SEISMIC_FILE = "seismic"  # Seismic appends .index.seismic
QUERY_BATCH = 32  # queries scored at once by the exact index: a (32, documents) float32 block


def _path(folder: Path, part: str) -> Path:
    return Path(folder) / f"sparse_{part}.npy"


def write_matrix(folder: Path, matrix: Any) -> None:
    matrix = matrix.tocsr()
    matrix.sort_indices()
    np.save(_path(folder, "indptr"), matrix.indptr.astype(np.int64))
    np.save(_path(folder, "indices"), matrix.indices.astype(np.int32))
    np.save(_path(folder, "values"), matrix.data.astype(np.float32))


def read_matrix(folder: Path, dim: int) -> Any:
    """The documents' (num_documents, vocabulary) CSR matrix."""
    import scipy.sparse as sp

    indptr, indices, values = (np.load(_path(folder, p)) for p in PARTS)
    return sp.csr_matrix((values, indices, indptr), shape=(len(indptr) - 1, dim))


def _stacked(shards: list[Shard], dim: int) -> Any:
    import scipy.sparse as sp

    parts = [s.sparse() for s in shards]
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, dim), dtype=np.float32)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, positions) of each row of ``scores`` (num_queries, num_documents), best first; a document
    that shares no term with the query (score 0) is no hit (-1)."""
    n = scores.shape[1]
    take = min(k, n)
    out_s = np.zeros((len(scores), k), np.float32)
    out_p = np.full((len(scores), k), -1, np.int64)
    if take == 0:
        return out_s, out_p
    part = np.argpartition(-scores, take - 1, axis=1)[:, :take] if take < n else \
        np.tile(np.arange(n), (len(scores), 1))  # (num_queries, take), unordered
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    best_scores = np.take_along_axis(part_scores, order, axis=1)
    out_s[:, :take] = best_scores
    out_p[:, :take] = np.where(best_scores > 0, best, -1)
    return out_s, out_p


class SparseIndex(Index):
    """A sparse index folder: the documents' CSR matrix; subclasses search it."""

    def __init__(self, folder: str | Path, encoder: Encoder | None = None):
        super().__init__(folder, encoder)
        self.matrix = read_matrix(self.folder, self.manifest.embedding_dim)  # (num_documents, vocabulary)
        self._query_terms = [0, 0]  # active terms over queries searched, and their number

    def search_encoded(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) of queries given as a CSR matrix (num_queries, vocabulary)."""
        queries = queries.tocsr()
        self._query_terms[0] += int(queries.nnz)
        self._query_terms[1] += queries.shape[0]
        if queries.shape[0] == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return self._search(queries, k)

    def _search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def statistics(self) -> dict[str, Any]:
        """Sparsity and size: mean active terms per document and per query searched so far, bytes on disk."""
        docs = self.matrix.shape[0]
        queries = self._query_terms[1]
        size = sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file() and "shards" not in p.parts)
        return {"mean_document_terms": round(self.matrix.nnz / docs, 2) if docs else 0.0,
                "mean_query_terms": round(self._query_terms[0] / queries, 2) if queries else None,
                "index_bytes": size}

    def explain(self, query: str, positions: list[int], top: int = 5) -> list[list[tuple[str, float]]]:
        """For each document position, the ``top`` terms that contribute most to its score for ``query``:
        (term, query weight x document weight), largest first."""
        q = self.encoder.encode_queries([query]).tocsr()
        q_terms = dict(zip(q.indices.tolist(), q.data.tolist()))
        out = []
        for pos in positions:
            row = self.matrix[int(pos)]
            shared = [(int(t), q_terms[int(t)] * float(w)) for t, w in zip(row.indices, row.data) if int(t) in q_terms]
            shared.sort(key=lambda item: -item[1])
            shared = shared[:top]
            names = self.encoder.terms(np.array([t for t, _ in shared], np.int64)) if shared else []
            out.append([(name, round(score, 4)) for name, (_, score) in zip(names, shared)])
        return out

    def description(self) -> dict[str, Any]:
        return super().description() | {"mean_document_terms": self.statistics()["mean_document_terms"]}


class ExactSparseIndex(SparseIndex):
    """Exact dot-product scores through the inverted (term -> documents) matrix, built when opened."""

    def __init__(self, folder: str | Path, encoder: Encoder | None = None):
        super().__init__(folder, encoder)
        self.inverted = self.matrix.T.tocsr()  # (vocabulary, num_documents): each term's postings

    def _search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        for start in range(0, queries.shape[0], QUERY_BATCH):
            # scipy's CSR x CSR product: only the query terms' postings are read (eval/sparse_bench.py measured a
            # dense scatter of each term's postings instead: no faster)
            scores = (queries[start:start + QUERY_BATCH] @ self.inverted).toarray()  # (batch, num_documents)
            parts.append(top_k(scores.astype(np.float32, copy=False), k))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Seismic prints its progress on the process's stdout, which holds embedkit's results: send it to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def build_seismic(matrix: Any, folder: Path, options: SeismicConfig) -> None:
    """Write Seismic's index of ``matrix`` (documents named by their position)."""
    import seismic

    dataset = seismic.SeismicDataset(dim=matrix.shape[1])
    if matrix.nnz:
        dataset.add_documents_by_id([str(i) for i in range(matrix.shape[0])], matrix.indices.astype(np.int64),
                                    matrix.data.astype(np.float32), matrix.indptr.astype(np.int64))
    with _stdout_to_stderr():
        index = seismic.SeismicIndex.build_from_dataset(dataset, n_postings=options.n_postings,
                                                        centroid_fraction=options.centroid_fraction,
                                                        summary_energy=options.summary_energy)
        index.save(str(folder / SEISMIC_FILE))


def seismic_search(index: Any, queries: Any, k: int, options: SeismicConfig) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, positions) of ``queries`` (num_queries, vocabulary) CSR from a loaded Seismic index whose
    documents are named by their position; a query without terms gets no hits (-1).

    All queries go in one ``batch_search`` call on one thread: Seismic's per-call Python cost is paid once, and
    each hit list is placed by the query id it carries, never by its order in the answer (eval/sparse_bench.py
    and tests/index check it returns what one ``search`` per query returns)."""
    import seismic

    string = seismic.get_seismic_string()
    scores = np.zeros((queries.shape[0], k), np.float32)
    positions = np.full((queries.shape[0], k), -1, np.int64)
    rows = [i for i in range(queries.shape[0]) if queries.indptr[i + 1] > queries.indptr[i]]
    if not rows:
        return scores, positions
    spans = [slice(queries.indptr[row], queries.indptr[row + 1]) for row in rows]
    lists = index.batch_search(np.array([str(row) for row in rows], dtype=string),
                               [queries.indices[s].astype(str).astype(string) for s in spans],
                               [queries.data[s].astype(np.float32) for s in spans], k=k,
                               query_cut=options.query_cut, heap_factor=options.heap_factor, num_threads=1)
    for hits in lists:
        for j, (query_id, score, doc) in enumerate(hits[:k]):
            scores[int(query_id), j], positions[int(query_id), j] = score, int(doc)
    return scores, positions


class SeismicIndex(SparseIndex):
    """Approximate search with Seismic over the same vectors (recall against sparse-exact: tests/index)."""

    def __init__(self, folder: str | Path, encoder: Encoder | None = None):
        import seismic

        super().__init__(folder, encoder)
        with _stdout_to_stderr():
            self.index = seismic.SeismicIndex.load(str(self.folder / f"{SEISMIC_FILE}.index.seismic"))
        self.options = SeismicConfig(**{k: v for k, v in self.manifest.settings.get("seismic", {}).items()
                                        if k in SeismicConfig.__dataclass_fields__})

    def _search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.matrix.nnz == 0:
            return np.zeros((queries.shape[0], k), np.float32), np.full((queries.shape[0], k), -1, np.int64)
        return seismic_search(self.index, queries, k, self.options)


class SparseBackend:
    """``sparse-exact`` and ``seismic``: the CSR matrix, plus Seismic's own index for ``seismic``."""

    kind = "sparse"

    def __init__(self, name: str, index_class: type[SparseIndex], seismic: bool):
        self.name, self.index_class, self.seismic = name, index_class, seismic

    def _settings(self, settings: IndexSettings | None, manifest: IndexManifest | None) -> SeismicConfig:
        if settings is not None:
            return settings.seismic
        return SeismicConfig(**manifest.settings.get("seismic", {}))

    def _write(self, folder: Path, matrix: Any, options: SeismicConfig) -> None:
        write_matrix(folder, matrix)
        if self.seismic:
            build_seismic(matrix, folder, options)

    def build(self, shards: list[Shard], folder: Path, settings: IndexSettings, dim: int) -> dict:
        matrix = _stacked(shards, dim)
        self._write(folder, matrix, settings.seismic)
        from dataclasses import asdict

        return {"seismic": asdict(settings.seismic)} if self.seismic else {}

    def open(self, folder: Path, encoder: Encoder | None) -> SparseIndex:
        return self.index_class(folder, encoder)

    def append(self, folder: Path, manifest: IndexManifest, vectors: Any, store: DocumentStore) -> None:
        import scipy.sparse as sp

        matrix = sp.vstack([read_matrix(folder, manifest.embedding_dim), vectors.tocsr()], format="csr")
        self._write(folder, matrix, self._settings(None, manifest))

    def remove(self, folder: Path, manifest: IndexManifest, positions: np.ndarray, store: DocumentStore) -> None:
        matrix = read_matrix(folder, manifest.embedding_dim)
        keep = np.ones(matrix.shape[0], dtype=bool)
        keep[positions] = False
        self._write(folder, matrix[keep], self._settings(None, manifest))


EXACT = SparseBackend("sparse-exact", ExactSparseIndex, seismic=False)
SEISMIC = SparseBackend("seismic", SeismicIndex, seismic=True)
