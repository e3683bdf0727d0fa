"""What every index shares: the manifest, the document store, and the search interface."""

from __future__ import annotations

import abc
import json
from array import array
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.artifacts import read_json, write_json
from embedkit.errors import EmbedkitError

MANIFEST = "embedkit-index.json"
FORMAT_VERSION = 1


@dataclass
class IndexManifest:
    kind: str                      # "dense" | "colbert"
    backend: str                   # "faiss" | "plaid" | "exact"
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
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class Hit:
    id: str
    score: float
    text: str | None = None


class DocumentStore:
    """Document ids and texts beside an index: ``documents.jsonl`` plus byte offsets, no pickle."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._ids: list[str] | None = None
        self._offsets: np.ndarray | None = None

    @staticmethod
    def write(folder: Path, documents: Iterable[tuple[str, str]]) -> int:
        # Streamed: ids go straight to doc_ids.json and offsets into a packed int64 array (8 bytes a
        # document, not a Python list of ids and ints: ~100 bytes a document, 10 GB at 100M).
        offsets = array("q")
        with open(folder / "documents.jsonl", "wb") as f, \
                open(folder / "doc_ids.json", "w", encoding="utf-8") as id_file:
            id_file.write("[")
            for doc_id, text in documents:
                id_file.write((", " if offsets else "") + json.dumps(doc_id, ensure_ascii=False))
                offsets.append(f.tell())
                f.write((json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n").encode("utf-8"))
            id_file.write("]")
        np.save(folder / "doc_offsets.npy", np.frombuffer(offsets, dtype=np.int64) if offsets
                else np.zeros(0, np.int64))
        return len(offsets)

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = json.loads((self.folder / "doc_ids.json").read_text(encoding="utf-8"))
        return self._ids

    def text(self, position: int) -> str:
        if self._offsets is None:
            self._offsets = np.load(self.folder / "doc_offsets.npy", mmap_mode="r")
        with open(self.folder / "documents.jsonl", "rb") as f:
            f.seek(int(self._offsets[position]))
            return json.loads(f.readline())["text"]


class Index(abc.ABC):
    """An index over encoded documents, searchable by query text."""

    manifest: IndexManifest
    store: DocumentStore

    @abc.abstractmethod
    def search_positions(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, positions), each (num_queries, k); missing hits have position -1."""

    def search(self, queries: list[str], k: int = 10, with_text: bool = True) -> list[list[Hit]]:
        scores, positions = self.search_positions(queries, k)
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

    def check_model(self, fingerprint: str, name: str) -> None:
        if fingerprint != self.manifest.model_fingerprint:
            raise EmbedkitError(f"this index was built with model {self.manifest.model!r}, not {name!r}; "
                                "searching it with another model would return nonsense. Rebuild the index.")
