"""The ``qdrant`` backend: dense vectors (one named vector with the model's distance) or ColBERT token vectors (a
multi-vector scored by Qdrant's own MaxSim) in a local Qdrant Edge shard (``index.qdrant.path``, by default
``qdrant/`` inside the index folder) or in a collection on a Qdrant server or cluster (``index.qdrant.url``).

The index folder keeps what every index keeps (manifest, document store, encoded shards), so search, eval,
fusion, reranking and serve use it like any other. The upload streams the encoded shards in batches of
``index.qdrant.upload_batch`` points and records how many documents are in (``qdrant-upload.json``): a killed
build resumes after the last recorded batch, and since point ids derive from document ids a batch sent twice
writes the same points.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.artifacts import read_json, write_json
from embedkit.config import IndexSettings, QdrantConfig
from embedkit.errors import EmbedkitError
from embedkit.index.base import DocumentStore, Index, IndexManifest
from embedkit.index.encode import Shard
from embedkit.index.qdrant_store import EdgeStore, ServerStore, VectorSpec, as_lists
from embedkit.models.encoder import Encoder

logger = logging.getLogger(__name__)

LOCAL_SHARD = "qdrant"            # the local shard's folder inside the index folder (index.qdrant.path unset)
UPLOAD_STATE = "qdrant-upload.json"


def vector_spec(config: QdrantConfig, dim: int, multivector: bool, normalized: bool) -> VectorSpec:
    """ColBERT token vectors are compared by dot product (MaxSim over unit vectors), dense ones with the model's
    own similarity: Cosine for normalised models, Dot otherwise."""
    return VectorSpec(name="colbert" if multivector else "dense", size=dim,
                      distance="Cosine" if normalized and not multivector else "Dot", multivector=multivector,
                      hnsw_m=config.hnsw_m, ef_construct=config.ef_construct, quantization=config.quantization)


def open_store(folder: Path, config: QdrantConfig, spec: VectorSpec, overwrite: bool = False,
               create: bool = True) -> EdgeStore | ServerStore:
    """The store an index in ``folder`` keeps its points in (``config.url``: a server; else a local shard)."""
    if config.url:
        return ServerStore(config, spec, overwrite=overwrite, create=create)
    path = Path(config.path) if config.path else Path(folder) / LOCAL_SHARD
    if overwrite and config.path and path.exists():
        import shutil

        shutil.rmtree(path)  # an explicit shard folder made with other settings: --overwrite replaces it
    return EdgeStore(path, spec, create=create)


def _batches(shards: list[Shard], size: int) -> Iterator[tuple[list[str], list]]:
    """(document ids, their vectors) in document order, ``size`` documents at a time: dense rows, or each
    document's token vectors (shards with lengths hold ColBERT documents)."""
    for shard in shards:
        ids = [doc_id for doc_id, _ in shard.documents()]
        embeddings, lengths = shard.embeddings(), shard.lengths()
        offsets = None if lengths is None else np.concatenate([[0], np.cumsum(lengths)])
        for start in range(0, len(ids), size):
            stop = min(start + size, len(ids))
            if offsets is None:
                vectors = as_lists(embeddings[start:stop])  # (batch, dim)
            else:
                vectors = as_lists([embeddings[offsets[i]:offsets[i + 1]] for i in range(start, stop)])
            yield ids[start:stop], vectors


def upload(shards: list[Shard], folder: Path, store: EdgeStore | ServerStore, batch: int) -> int:
    """Upsert every document of ``shards`` into ``store``, resuming after the batches a previous (killed) run
    recorded in ``folder/qdrant-upload.json``; returns the number of documents uploaded by this call."""
    state_path = folder / UPLOAD_STATE
    spec = vars(store.spec)
    state = read_json(state_path) if state_path.is_file() else {}
    done = state.get("documents", 0) if state.get("spec") == spec and state.get("batch") == batch else 0
    position, sent = 0, 0
    for doc_ids, vectors in _batches(shards, batch):
        position += len(doc_ids)
        if position <= done:
            continue
        store.upsert(doc_ids, vectors)
        sent += len(doc_ids)
        write_json(state_path, {"spec": spec, "batch": batch, "documents": position})
    if done:
        logger.info("qdrant upload resumed: %d documents were already in, %d sent now", done, sent)
    return sent


class QdrantBackend:
    """Points in Qdrant; documents keep their positions in the document store, found by id."""

    name = "qdrant"
    kind = "dense"  # and colbert (the registry's other_kinds); which one is read from the shards

    def preflight(self, settings: IndexSettings, dim: int, multivector: bool, normalized: bool,
                  overwrite: bool) -> None:
        """Before encoding: a server must answer and its collection must fit (or be replaced: ``overwrite``)."""
        config = settings.qdrant
        if config.url or (config.path and Path(config.path).exists()):
            spec = vector_spec(config, dim, multivector, normalized and not multivector)
            open_store(Path("."), config, spec, overwrite=overwrite).close()

    def build(self, shards: list[Shard], folder: Path, settings: IndexSettings, dim: int) -> dict:
        from embedkit.index.faiss_index import _normalized

        multivector = any(s.lengths() is not None for s in shards)
        spec = vector_spec(settings.qdrant, dim, multivector, not multivector and _normalized(shards))
        store = open_store(folder, settings.qdrant, spec)
        try:
            upload(shards, folder, store, settings.qdrant.upload_batch)
            store.finish()
            total, count = sum(s.count for s in shards), store.count()
            if count != total:
                raise EmbedkitError(f"the Qdrant collection holds {count} points, the corpus {total} documents (a "
                                    "collection another corpus was uploaded to?); rebuild with --overwrite")
        finally:
            store.close()
        where = {"url": settings.qdrant.url, "collection": settings.qdrant.collection} if settings.qdrant.url \
            else {"path": settings.qdrant.path or LOCAL_SHARD}
        return {**where, "vector": vars(spec), "ef_search": settings.qdrant.ef_search,
                "api_key_env": settings.qdrant.api_key_env, "timeout": settings.qdrant.timeout}

    def open(self, folder: Path, encoder: Encoder | None) -> QdrantIndex:
        return QdrantIndex(folder, encoder)

    def append(self, folder: Path, manifest: IndexManifest, vectors: Any, store: DocumentStore) -> None:
        ids = store.ids[len(store.ids) - len(vectors):]
        points = _open(folder, manifest)
        try:
            points.upsert(ids, as_lists(vectors))
            points.finish()
        finally:
            points.close()

    def remove(self, folder: Path, manifest: IndexManifest, positions: np.ndarray, store: DocumentStore) -> None:
        # ``store`` is already compacted: the removed ids are read from the published folder being edited
        # (``folder`` is its ``.partial`` copy, see Index._edit).
        published = DocumentStore(folder.with_name(folder.name.removesuffix(".partial")))
        points = _open(folder, manifest)
        try:
            points.delete([published.ids[int(p)] for p in positions])
            points.finish()
        finally:
            points.close()


def _config(manifest: IndexManifest) -> QdrantConfig:
    s = manifest.settings
    return QdrantConfig(path=s.get("path") if s.get("path") != LOCAL_SHARD else None, url=s.get("url"),
                        collection=s.get("collection", QdrantConfig.collection),
                        api_key_env=s.get("api_key_env", QdrantConfig.api_key_env),
                        timeout=s.get("timeout", QdrantConfig.timeout))


def _open(folder: Path, manifest: IndexManifest) -> EdgeStore | ServerStore:
    return open_store(folder, _config(manifest), VectorSpec(**manifest.settings["vector"]), create=False)


class QdrantIndex(Index):
    """Searched by Qdrant (a local shard in-process, or a server); hits map back to store positions by id."""

    def __init__(self, folder: str | Path, encoder: Encoder | None = None):
        super().__init__(folder, encoder)
        self.points = _open(self.folder, self.manifest)
        self.ef_search = self.manifest.settings.get("ef_search")
        self._positions: dict[str, int] | None = None

    def description(self) -> dict[str, Any]:
        where = self.manifest.settings.get("url") or "local shard"
        return {**super().description(), "qdrant": where}

    def _position(self, doc_id: str) -> int:
        if self._positions is None:
            self._positions = {doc_id: i for i, doc_id in enumerate(self.store.ids)}
        return self._positions.get(doc_id, -1)

    def search_encoded(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions), each (num_queries, k), of dense (num_queries, dim) query vectors or of
        ColBERT queries (a list of (tokens_i, dim) arrays); position -1 where nothing was found."""
        k = min(k, max(1, self.manifest.num_documents))
        hits = self.points.search(as_lists(queries), k, self.ef_search)
        scores = np.full((len(hits), k), -np.inf, np.float32)
        positions = np.full((len(hits), k), -1, np.int64)
        for row, answer in enumerate(hits):
            for col, (doc_id, score) in enumerate(answer[:k]):
                scores[row, col], positions[row, col] = score, self._position(doc_id)
        return scores, positions


BACKEND = QdrantBackend()
