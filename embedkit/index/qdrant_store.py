"""Where a ``qdrant`` index keeps its points: a local shard run in-process by Qdrant Edge (``qdrant-edge-py``, the
server's own storage and search engine as a library), or a collection on a Qdrant server or cluster
(``qdrant-client``). Both hold one named vector per point (dense, or a ColBERT multi-vector scored by Qdrant's
MaxSim) and the document id in the payload; point ids are derived from document ids (uuid5), so uploading a
document twice writes one point.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.config import QdrantConfig
from embedkit.errors import EmbedkitError

NAMESPACE = uuid.UUID("4b6d1f0e-5a43-5c2e-9f0e-6d6b69746b31")  # embedkit's uuid5 namespace for point ids
ID_KEY = "doc_id"  # the payload key holding the original document id


def point_id(doc_id: str) -> str:
    """The point id of a document: the same for the same id on every run (re-upserting is idempotent)."""
    return str(uuid.uuid5(NAMESPACE, doc_id))


@dataclass(frozen=True)
class VectorSpec:
    """What a collection holds: one named vector of ``size`` with ``distance``, multi-vector (MaxSim) or not, and
    the engine's HNSW / quantization parameters. Two uploads with equal specs fill the same collection."""

    name: str            # the named vector: "dense" or "colbert"
    size: int
    distance: str        # Cosine (normalised dense models) or Dot
    multivector: bool    # ColBERT token vectors, scored by MaxSim
    hnsw_m: int
    ef_construct: int
    quantization: str    # index.qdrant.quantization: none | int8 | binary

    def differences(self, other: VectorSpec) -> list[str]:
        mine, theirs = asdict(self), asdict(other)
        return [f"{key}: {theirs[key]} -> {mine[key]}" for key in mine if mine[key] != theirs[key]]


def _edge_quantization(name: str) -> Any:
    """Qdrant Edge's quantization config for index.qdrant.quantization (None: original vectors only)."""
    import qdrant_edge as q

    if name == "int8":
        return q.ScalarQuantizationConfig(q.ScalarType.Int8)
    return q.BinaryQuantizationConfig() if name == "binary" else None


_OPEN: dict[str, list] = {}  # resolved shard folder -> [EdgeShard, number of EdgeStores using it]


class EdgeStore:
    """A local shard at ``path`` (Qdrant Edge). Its spec is kept beside the shard's own files
    (``embedkit-spec.json``) so that a shard made with other settings is recognised before any upload."""

    SPEC = "embedkit-spec.json"

    def __init__(self, path: Path, spec: VectorSpec, create: bool = True):
        import qdrant_edge as q

        from embedkit.artifacts import read_json, write_json

        self.path, self.spec, self._q = Path(path), spec, q
        saved = read_json(self.path / self.SPEC) if (self.path / self.SPEC).is_file() else None
        if saved is not None and VectorSpec(**saved) != spec:
            raise EmbedkitError(f"the Qdrant shard {self.path} holds other settings "
                                f"({'; '.join(spec.differences(VectorSpec(**saved)))}); pass --overwrite")
        config = q.EdgeConfig(vectors={spec.name: q.EdgeVectorParams(
            size=spec.size, distance=getattr(q.Distance, spec.distance),
            multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim) if spec.multivector else None,
            quantization_config=_edge_quantization(spec.quantization),
            hnsw_config=q.HnswIndexConfig(m=spec.hnsw_m, ef_construct=spec.ef_construct,
                                          full_scan_threshold=10_000))})
        # the folder's inode too: an index edit publishes a new copy of the shard at the same path
        self._key = f"{self.path.resolve()}:{self.path.stat().st_ino if self.path.exists() else 'new'}"
        self._closed = False
        if self._key in _OPEN:  # a shard is opened once per process (its write-ahead log is locked)
            _OPEN[self._key][1] += 1
        elif (self.path / "segments").is_dir():
            _OPEN[self._key] = [q.EdgeShard.load(str(self.path), config), 1]
        elif create:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self.path / self.SPEC, asdict(spec))
            self._key = f"{self.path.resolve()}:{self.path.stat().st_ino}"
            _OPEN[self._key] = [q.EdgeShard.create(str(self.path), config), 1]
        else:
            raise EmbedkitError(f"{self.path} holds no Qdrant shard")
        self.shard = _OPEN[self._key][0]

    def upsert(self, doc_ids: list[str], vectors: list) -> None:
        q = self._q
        points = [q.Point(point_id(d), {self.spec.name: v}, {ID_KEY: d}) for d, v in zip(doc_ids, vectors)]
        self.shard.update(q.UpdateOperation.upsert_points(points))

    def delete(self, doc_ids: list[str]) -> None:
        self.shard.update(self._q.UpdateOperation.delete_points([point_id(d) for d in doc_ids]))

    def count(self) -> int:
        return int(self.shard.count(self._q.CountRequest(exact=True)))

    def search(self, queries: list, k: int, ef: int | None) -> list[list[tuple[str, float]]]:
        q = self._q
        params = q.SearchParams(hnsw_ef=ef) if ef else None
        out = []
        for query in queries:
            hits = self.shard.query(q.QueryRequest(limit=k, query=q.Query.Nearest(query, using=self.spec.name),
                                                   with_payload=[ID_KEY], params=params))
            out.append([(hit.payload[ID_KEY], float(hit.score)) for hit in hits])
        return out

    def scroll(self, batch: int) -> Iterator[tuple[list[str], list]]:
        """Every point as (document ids, vectors), ``batch`` at a time."""
        q, offset = self._q, None
        while True:
            records, offset = self.shard.scroll(q.ScrollRequest(offset=offset, limit=batch, with_payload=[ID_KEY],
                                                                with_vector=[self.spec.name]))
            if records:
                yield [r.payload[ID_KEY] for r in records], [r.vector[self.spec.name] for r in records]
            if offset is None:
                return

    def finish(self) -> None:
        self.shard.flush()
        self.shard.optimize()  # builds the HNSW graph past the full-scan threshold, as a server does

    def close(self) -> None:
        entry = _OPEN.get(self._key)
        if entry is None or self._closed:
            return
        self._closed = True
        entry[1] -= 1
        if entry[1] == 0:
            del _OPEN[self._key]
            self.shard.close()

    def __del__(self) -> None:  # an index replaced by its edited copy lets go of the old shard
        if getattr(self, "_key", None) is not None:
            self.close()


class ServerStore:
    """A collection on a Qdrant server or cluster, through qdrant-client. Reachability and the collection's
    settings are checked when it is opened, before any work."""

    def __init__(self, config: QdrantConfig, spec: VectorSpec, overwrite: bool = False, create: bool = True,
                 client: Any = None):
        """``client``: an already made ``QdrantClient`` (e.g. qdrant-client's local mode) instead of one to
        ``config.url``."""
        from qdrant_client import QdrantClient, models
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        self.config, self.spec, self._m = config, spec, models
        self.name = config.collection
        key = os.environ.get(config.api_key_env) or None
        self._own_client = client is None
        self.client = client or QdrantClient(url=config.url, api_key=key, timeout=config.timeout,
                                             check_compatibility=False)
        try:
            exists = self.client.collection_exists(self.name)
        except (ResponseHandlingException, UnexpectedResponse, OSError) as exc:  # refused, DNS, TLS, auth
            raise EmbedkitError(f"cannot reach the Qdrant server at {config.url} ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); check index.qdrant.url and ${config.api_key_env}") from None
        if exists:
            theirs = self._spec_of_collection()
            if theirs is not None and theirs != spec and not overwrite:
                raise EmbedkitError(f"the Qdrant collection {self.name!r} at {config.url} holds other settings "
                                    f"({'; '.join(spec.differences(theirs))}); pass --overwrite to recreate it")
            if theirs != spec and overwrite:
                self.client.delete_collection(self.name)
                exists = False
        if not exists:
            if not create:
                raise EmbedkitError(f"no collection {self.name!r} at {config.url}")
            self._create()

    def _vector_params(self) -> Any:
        m, spec = self._m, self.spec
        quantization = {"none": None,
                        "int8": m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8)),
                        "binary": m.BinaryQuantization(binary=m.BinaryQuantizationConfig())}[spec.quantization]
        return m.VectorParams(
            size=spec.size, distance=getattr(m.Distance, spec.distance.upper()),
            multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM)
            if spec.multivector else None,
            hnsw_config=m.HnswConfigDiff(m=spec.hnsw_m, ef_construct=spec.ef_construct),
            quantization_config=quantization)

    def _create(self) -> None:
        self.client.create_collection(self.name, vectors_config={self.spec.name: self._vector_params()},
                                      shard_number=self.config.shard_number,
                                      replication_factor=self.config.replication_factor,
                                      metadata={"embedkit_spec": asdict(self.spec)})

    def _spec_of_collection(self) -> VectorSpec | None:
        info = self.client.get_collection(self.name)
        saved = (getattr(info.config, "metadata", None) or {}).get("embedkit_spec")
        if saved:
            return VectorSpec(**saved)
        vectors = info.config.params.vectors
        params = vectors.get(self.spec.name) if isinstance(vectors, dict) else None
        if params is None:
            return VectorSpec(name="(another layout)", size=0, distance="", multivector=False, hnsw_m=0,
                              ef_construct=0, quantization="")
        return VectorSpec(self.spec.name, params.size, params.distance.value.capitalize(),
                          params.multivector_config is not None, self.spec.hnsw_m, self.spec.ef_construct,
                          self.spec.quantization)

    def upsert(self, doc_ids: list[str], vectors: list) -> None:
        m = self._m
        points = [m.PointStruct(id=point_id(d), vector={self.spec.name: v}, payload={ID_KEY: d})
                  for d, v in zip(doc_ids, vectors)]
        self.client.upsert(self.name, points=points, wait=True)

    def delete(self, doc_ids: list[str]) -> None:
        m = self._m
        self.client.delete(self.name, points_selector=m.PointIdsList(points=[point_id(d) for d in doc_ids]),
                           wait=True)

    def count(self) -> int:
        return int(self.client.count(self.name, exact=True).count)

    def search(self, queries: list, k: int, ef: int | None) -> list[list[tuple[str, float]]]:
        m = self._m
        params = m.SearchParams(hnsw_ef=ef) if ef else None
        requests = [m.QueryRequest(query=query, using=self.spec.name, limit=k, with_payload=[ID_KEY], params=params)
                    for query in queries]
        answers = self.client.query_batch_points(self.name, requests=requests) if requests else []
        return [[(p.payload[ID_KEY], float(p.score)) for p in answer.points] for answer in answers]

    def scroll(self, batch: int) -> Iterator[tuple[list[str], list]]:
        """Every point as (document ids, vectors), ``batch`` at a time."""
        offset = None
        while True:
            records, offset = self.client.scroll(self.name, limit=batch, offset=offset, with_payload=[ID_KEY],
                                                 with_vectors=[self.spec.name])
            if records:
                yield [r.payload[ID_KEY] for r in records], [r.vector[self.spec.name] for r in records]
            if offset is None:
                return

    def finish(self) -> None:
        pass

    def close(self) -> None:
        if self._own_client:
            self.client.close()


def as_lists(vectors: Any) -> list:
    """Vectors as the JSON-like lists both clients take: a (n, dim) array, or a list of (tokens_i, dim) arrays."""
    if isinstance(vectors, np.ndarray):
        return np.asarray(vectors, dtype=np.float32).tolist()
    return [np.asarray(v, dtype=np.float32).tolist() for v in vectors]
