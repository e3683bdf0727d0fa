"""What every index shares: the manifest, the document store, and the search interface.

A :class:`Searcher` is anything searched by query text: an :class:`Index` (a built folder: manifest, document
store, backend files; documents can be added and deleted), or fusion and reranking over other searchers
(``embedkit.retrieve.retriever``). :class:`SearchedIndex` is what a searcher answers with underneath: the
documents encoded by one model (or none, bm25), described by a manifest; an ``Index`` is one, and so is BM25
built in memory over another index's documents.
"""

from __future__ import annotations

import abc
import json
import mmap
import shutil
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embedkit.artifacts import partial_path, publish_dir, read_json, versions, write_json
from embedkit.errors import EmbedkitError
from embedkit.models.encoder import Encoded, Encoder

MANIFEST = "embedkit-index.json"
FORMAT_VERSION = 3  # 3: backend names flat|hnsw|ivfpq|plaid|exact|bm25; 2: ids in doc_ids.jsonl + offsets


@dataclass
class IndexManifest:
    kind: str                      # the encoder: "dense" | "colbert" | "lexical" (none)
    backend: str                   # a name of embedkit.index.registry.BACKENDS
    model: str                     # path or hub id the index was built with
    model_fingerprint: str
    embedding_dim: int
    normalized: bool
    num_documents: int
    corpus: str
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def save(self, folder: Path) -> None:
        write_json(folder / MANIFEST, asdict(self))

    @classmethod
    def load(cls, folder: str | Path) -> "IndexManifest":
        folder = Path(folder)
        if not (folder / MANIFEST).is_file():
            hint = " (an interrupted build? rerun the same `embedkit index` command to resume)" \
                if folder.with_name(folder.name + ".partial").exists() else ""
            raise EmbedkitError(f"{folder} is not an embedkit index (no {MANIFEST}){hint}")
        raw = read_json(folder / MANIFEST)
        if raw.get("format_version") != FORMAT_VERSION:
            raise EmbedkitError(f"{folder} holds index format {raw.get('format_version')}; this embedkit reads format "
                                f"{FORMAT_VERSION}. Rebuild it with `embedkit index ... --overwrite`")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


class IdList(Sequence[str]):
    """The document ids of a store, read on demand from ``doc_ids.jsonl`` (memory-mapped) by position.

    At search time only the ids of hits are decoded, so a 100M-document index does not hold 100M Python
    strings (~7 GB); iterating streams the file.
    """

    def __init__(self, folder: Path):
        self._path = folder / "doc_ids.jsonl"
        self._offsets = np.load(folder / "doc_id_offsets.npy", mmap_mode="r")
        self._size = self._path.stat().st_size
        self._data: mmap.mmap | None = None

    def __len__(self) -> int:
        return len(self._offsets)

    def _bytes(self) -> mmap.mmap:
        if self._data is None:
            with open(self._path, "rb") as f:
                self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._data

    def __getitem__(self, position):  # type: ignore[override]
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        n = len(self)
        position = int(position)
        if position < 0:
            position += n
        if not 0 <= position < n:
            raise IndexError(f"document position {position} out of range ({n} documents)")
        start = int(self._offsets[position])
        stop = int(self._offsets[position + 1]) if position + 1 < n else self._size
        return json.loads(self._bytes()[start:stop])

    def __iter__(self) -> Iterator[str]:
        with open(self._path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


class DocumentStore:
    """Document ids and texts beside an index, no pickle: ``documents.jsonl`` (``{"id", "text"}`` lines) with
    ``doc_offsets.npy`` (byte offset of each line), and ``doc_ids.jsonl`` (one JSON string a line) with
    ``doc_id_offsets.npy``. Position ``i`` is the ``i``-th document the index holds."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._ids: IdList | None = None
        self._offsets: np.ndarray | None = None

    @staticmethod
    def write(folder: Path, documents: Iterable[tuple[str, str]]) -> int:
        """Streamed: offsets go into packed int64 arrays (8 bytes a document, not ~100 in Python lists)."""
        for name in ("documents.jsonl", "doc_ids.jsonl"):
            (Path(folder) / name).write_bytes(b"")
        for name in ("doc_offsets.npy", "doc_id_offsets.npy"):
            np.save(Path(folder) / name, np.zeros(0, np.int64))
        return DocumentStore.append(folder, documents)

    @staticmethod
    def append(folder: Path, documents: Iterable[tuple[str, str]]) -> int:
        """Add documents after the ones ``folder`` holds; returns the new total."""
        folder = Path(folder)
        offsets, id_offsets = array("q"), array("q")
        with open(folder / "documents.jsonl", "ab") as f, open(folder / "doc_ids.jsonl", "ab") as id_file:
            for doc_id, text in documents:
                offsets.append(f.tell())
                id_offsets.append(id_file.tell())
                f.write((json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n").encode("utf-8"))
                id_file.write((json.dumps(doc_id, ensure_ascii=False) + "\n").encode("utf-8"))
        for name, new in (("doc_offsets.npy", offsets), ("doc_id_offsets.npy", id_offsets)):
            np.save(folder / name, np.concatenate([np.load(folder / name), np.asarray(new, dtype=np.int64)]))
        return len(np.load(folder / "doc_offsets.npy", mmap_mode="r"))

    @staticmethod
    def delete(folder: Path, positions: np.ndarray) -> int:
        """Drop the documents at ``positions``; the rest keep their order (and are renumbered 0..n-1)."""
        folder = Path(folder)
        drop = set(int(p) for p in positions)
        with open(folder / "documents.jsonl", "rb") as f:
            kept = [json.loads(line) for i, line in enumerate(f) if i not in drop]
        return DocumentStore.write(folder, ((d["id"], d["text"]) for d in kept))

    @property
    def ids(self) -> IdList:
        if self._ids is None:
            self._ids = IdList(self.folder)
        return self._ids

    def text(self, position: int) -> str:
        if self._offsets is None:
            self._offsets = np.load(self.folder / "doc_offsets.npy", mmap_mode="r")
        with open(self.folder / "documents.jsonl", "rb") as f:
            f.seek(int(self._offsets[position]))
            return json.loads(f.readline())["text"]


@dataclass
class Hit:
    id: str
    score: float
    text: str | None = None


class Searcher(Protocol):
    """Something searched by query text; its positions are those of ``store``'s documents.

    ``embedkit search``, ``eval`` and ``serve`` ask a searcher for nothing else, so they run one retrieve path
    whatever it is made of.
    """

    store: DocumentStore  # the documents its positions refer to: the hits' ids and texts

    @abc.abstractmethod
    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, positions), each (num_queries, k); missing hits have position -1."""

    @abc.abstractmethod
    def description(self) -> dict[str, Any]:
        """What answers a search, for results JSON, reports and ``GET /info``: at least its ``method``."""

    @property
    @abc.abstractmethod
    def searched_index(self) -> SearchedIndex:
        """The index whose documents, model and manifest this searcher answers with: itself for an index, the
        searched (first) index under fusion and reranking."""

    def search(self, queries: list[str], k: int = 10, with_text: bool = True) -> list[list[Hit]]:
        """The top ``k`` hits of each query (a list of query texts: one list of hits per query)."""
        check_search(queries, k)
        # no more hits than documents: a huge k allocates nothing beyond them (the hits are the same)
        scores, positions = self.search_positions(queries, min(k, max(1, len(self.store.ids))))
        ids = self.store.ids
        results = []
        for row_scores, row_pos in zip(scores, positions):
            hits = []
            for score, pos in zip(row_scores, row_pos):
                if pos < 0:
                    continue
                hits.append(Hit(ids[pos], float(score), self.store.text(int(pos)) if with_text else None))
            results.append(hits)
        return results


class SearchedIndex(Searcher, Protocol):
    """Documents encoded by one model (or none), described by a manifest, searched directly."""

    manifest: IndexManifest
    encoder: Encoder | None  # what reads the queries; None when loaded without a model (to delete documents)

    def description(self) -> dict[str, Any]:
        from embedkit.index.registry import kind_of_label

        m = self.manifest
        kind = kind_of_label(m.kind)
        model_free = kind is not None and not kind.needs_model
        method = m.backend if model_free else m.kind  # a model-free index is named by its backend: bm25
        return {"method": method, "model": m.model, "backend": m.backend, "num_documents": m.num_documents}

    @property
    def searched_index(self) -> SearchedIndex:
        return self


def check_search(queries: Any, k: Any) -> None:
    """A search's arguments as a user may get them wrong: one string instead of a list, k that is not a whole
    number of at least 1 (shown cut short, as an over-long one is)."""
    if isinstance(queries, str) or not isinstance(queries, (list, tuple)) or \
            not all(isinstance(q, str) for q in queries):
        raise EmbedkitError(f"queries: a list of query texts is expected, got {type(queries).__name__}; "
                            "search one query as search([\"a query\"], k)")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        shown = repr(k)
        shown = shown if len(shown) <= 40 else shown[:20] + f"... ({len(shown)} characters)"
        raise EmbedkitError(f"k: must be a whole number of at least 1, got {shown}")


class Index(SearchedIndex):
    """A built index folder: its manifest, document store and backend files, searchable by query text.

    Built and opened through ``embedkit.index.build``; one registry (``embedkit.index.registry``) holds the
    backends (flat, hnsw, ivfpq, plaid, exact, bm25). ``add`` and ``delete`` change a copy of the folder through
    the backend, publish it, and reload.
    """

    folder: Path

    def __init__(self, folder: str | Path, encoder: Encoder | None = None):
        self.folder = Path(folder)
        self.manifest = IndexManifest.load(self.folder)
        self.store = DocumentStore(self.folder)
        self.encoder = encoder

    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.encoder is None:
            raise EmbedkitError("this index was loaded without a model; pass one to search by text")
        return self.search_encoded(self.encoder.encode_queries(queries), k)

    @abc.abstractmethod
    def search_encoded(self, queries: Encoded, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions), each (num_queries, k), of queries as this index's encoder gives them;
        position -1 where nothing was found."""

    @property
    def backend(self) -> Any:
        from embedkit.index.registry import get_backend

        return get_backend(self.manifest.backend)

    def add(self, documents: Iterable[tuple[str, str]]) -> int:
        """Encode ``(id, text)`` documents (e.g. a Corpus) with this index's encoder and add them after the
        last position; return the new document count. Ids already in the index are refused."""
        existing = set(self.store.ids)
        new = [(doc_id, text) for doc_id, text in documents]
        clash = next((d for d, _ in new if d in existing), None)
        if clash is not None:
            raise EmbedkitError(f"{getattr(documents, 'source', 'documents')}: document id {clash!r} is already in "
                                f"{self.folder}")
        if not new:
            return self.manifest.num_documents
        if self.encoder is None:
            raise EmbedkitError("this index was loaded without a model; pass one to add documents")
        texts = [t for _, t in new]
        from embedkit.index.encode import stack_parts

        parts = [self.encoder.encode_documents(texts[i:i + 4096]) for i in range(0, len(texts), 4096)]
        vectors: Any = [v.astype(np.float16) for p in parts for v in p] if isinstance(parts[0], list) \
            else stack_parts(parts)  # colbert: one (tokens_i, dim) array a document; dense: (n, dim); sparse: CSR
        with self._edit() as folder:
            num = DocumentStore.append(folder, new)
            self.backend.append(folder, self.manifest, vectors, DocumentStore(folder))
            self._save_manifest(folder, num)
        return self._reopen()

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id (an unknown id is an error); the rest keep their order and are renumbered.
        Returns the new document count."""
        wanted = set(ids)
        positions = np.array([i for i, doc_id in enumerate(self.store.ids) if doc_id in wanted], dtype=np.int64)
        if len(positions) != len(wanted):
            found = {self.store.ids[int(p)] for p in positions}
            raise EmbedkitError(f"{self.folder} holds no document with id {sorted(wanted - found)[0]!r}")
        if not len(positions):
            return self.manifest.num_documents
        with self._edit() as folder:
            num = DocumentStore.delete(folder, positions)
            self.backend.remove(folder, self.manifest, positions, DocumentStore(folder))
            self._save_manifest(folder, num)
        return self._reopen()

    def statistics(self) -> dict[str, Any]:
        """What evaluation records about the index besides its description (sparse: terms per vector, size)."""
        return {}

    def _edit(self):
        """A copy of the folder to change, published over the original when the change is complete."""
        work = partial_path(self.folder)
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(self.folder, work)
        return publish_dir(self.folder, overwrite=True, manifest=MANIFEST, what="an index", announce=False)

    def _save_manifest(self, folder: Path, num: int) -> None:
        manifest = IndexManifest(**asdict(self.manifest))
        manifest.num_documents = num
        manifest.versions = versions()
        manifest.save(folder)

    def _reopen(self) -> int:
        fresh = self.backend.open(self.folder, self.encoder)
        self.__dict__.update(fresh.__dict__)
        return self.manifest.num_documents
