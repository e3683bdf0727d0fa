"""Corpora as re-readable streams of (id, text): BEIR folders, JSONL, Parquet, or hub datasets."""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.data.id_check import IdHashes
from embedkit.data.records import iter_jsonl
from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

ID_CHECK_BATCH = 4096  # records read ahead and checked for repeated ids together

ID_FIELDS = ("_id", "id", "doc_id", "docid", "corpus-id")
TEXT_FIELDS = ("text", "contents", "content", "document", "body")


def document_text(title: Any, text: Any) -> str:
    """BEIR's convention: title and body joined by a space."""
    title = (title or "").strip() if isinstance(title, str) else ""
    text = (text or "").strip() if isinstance(text, str) else ""
    return f"{title} {text}".strip() if title else text


def _pick(obj: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in obj:
            return name
    return None


def _rows_from_record(obj: dict[str, Any], where: str, titles: bool = True) -> tuple[str, str]:
    id_key, text_key = _pick(obj, ID_FIELDS), _pick(obj, TEXT_FIELDS)
    if id_key is None or text_key is None:
        missing = [" or ".join(repr(n) for n in names) for key, names in
                   ((id_key, ID_FIELDS), (text_key, TEXT_FIELDS)) if key is None]
        raise EmbedkitError(f"{where}: missing field {'; missing '.join(missing)}; "
                            f"found fields: {', '.join(map(str, obj)) or 'none'}")
    return str(obj[id_key]), document_text(obj.get("title") if titles else None, obj[text_key])


def digest_documents(ids: Iterable[str], texts: Iterable[str], digest: Any = None) -> Any:
    """Feed ``(id, text)`` pairs into a blake2b digest (a new one unless given): equal documents in the same
    order give equal digests, whichever file or folder they were read from."""
    digest = digest or hashlib.blake2b(digest_size=16)
    for doc_id, text in zip(ids, texts):
        digest.update(doc_id.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e")
    return digest


def _chunks(records: Iterable[tuple[str, str, str]], size: int) -> Iterator[list[tuple[str, str, str]]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@dataclass
class Corpus:
    """A corpus that can be read more than once, in order, with ids checked.

    ``source`` is a BEIR folder (``corpus.jsonl``), a ``.jsonl``/``.jsonl.gz`` or ``.parquet`` file, or a
    Hugging Face dataset id (``owner/name``, optionally ``subset`` and ``split``).

    ``skip_empty`` drops documents whose title and text are both empty (counted in ``skipped_empty``
    and logged), which suits a user corpus for ``embedkit index``. A benchmark corpus is read with
    ``skip_empty=False``: BEIR and MTEB encode such documents (FiQA has five) as empty text, and
    dropping them would change the corpus that is scored.

    ``titles``: a document is its title and text joined by a space (BEIR's and MTEB's convention), or with
    ``titles=False`` its text alone (CoIR's: its models encode ``doc["text"]`` only).

    After a complete pass, ``fingerprint`` identifies the documents read (ids and texts, in order): two
    sources holding the same documents, a file and its BEIR folder, have the same fingerprint.
    """

    source: str
    subset: str | None = None
    split: str | None = None
    skip_empty: bool = True
    titles: bool = True
    skipped_empty: int = field(default=0, init=False)
    fingerprint: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._reader = _resolve(self.source, self.subset, self.split, self.titles)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        hashes = IdHashes()
        digest = hashlib.blake2b(digest_size=16)
        skipped = 0
        count = 0
        for chunk in _chunks(self._reader(), ID_CHECK_BATCH):
            self._check_unique(chunk, hashes)
            for _, doc_id, text in chunk:
                if not text and self.skip_empty:
                    skipped += 1
                    continue
                count += 1
                digest_documents((doc_id,), (text,), digest)
                yield doc_id, text
        self.skipped_empty = skipped
        self.fingerprint = digest.hexdigest()
        if skipped:
            logger.warning("%s: skipped %d empty documents", self.source, skipped)
        if count == 0:
            raise EmbedkitError(f"{self.source}: the corpus has no {'non-empty ' if self.skip_empty else ''}"
                                "documents")

    def _check_unique(self, chunk: list[tuple[str, str, str]], hashes: IdHashes) -> None:
        """Refuse a repeated id, naming both places; ``hashes`` holds every id before ``chunk``."""
        first: dict[str, str] = {}
        for where, doc_id, _ in chunk:
            if doc_id in first:
                raise EmbedkitError(f"{where}: duplicate document id {doc_id!r} (first at {first[doc_id]})")
            first[doc_id] = where
        ids = [doc_id for _, doc_id, _ in chunk]
        new = hashes.hashes(ids)
        maybe = hashes.seen(new)
        if maybe.any():  # a repeat, or a hash collision: look for the earlier ids themselves
            suspects = {ids[i]: chunk[i][0] for i in np.flatnonzero(maybe)}
            earlier: dict[str, str] = {}
            for where, doc_id, _ in itertools.islice(self._reader(), hashes.count):
                if doc_id in suspects and doc_id not in earlier:
                    earlier[doc_id] = where
            for doc_id, where in suspects.items():
                if doc_id in earlier:
                    raise EmbedkitError(f"{where}: duplicate document id {doc_id!r} (first at {earlier[doc_id]})")
        hashes.add(new)

    def batches(self, size: int) -> Iterator[tuple[list[str], list[str]]]:
        ids: list[str] = []
        texts: list[str] = []
        for doc_id, text in self:
            ids.append(doc_id)
            texts.append(text)
            if len(ids) == size:
                yield ids, texts
                ids, texts = [], []
        if ids:
            yield ids, texts


Reader = Any  # a zero-argument callable yielding (where, id, text)


def corpus_file(source: str) -> Path | None:
    """The file a local corpus is read from (a BEIR folder's ``corpus.jsonl``), None for a hub dataset."""
    path = Path(source).expanduser()
    if path.is_dir():
        return next((path / name for name in ("corpus.jsonl", "corpus.jsonl.gz", "corpus.parquet")
                     if (path / name).is_file()), None)
    return path if path.is_file() else None


def _resolve(source: str, subset: str | None, split: str | None, titles: bool = True) -> Reader:
    path = Path(source).expanduser()
    if path.is_dir():
        file = corpus_file(source)
        if file is None:
            raise EmbedkitError(f"{path}: no corpus.jsonl in this folder (expected a BEIR-format folder)")
        return _resolve(str(file), subset, split, titles)
    if path.is_file():
        name = path.name.lower()
        if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
            return lambda: _jsonl_rows(path, titles)
        if name.endswith(".parquet"):
            return lambda: _parquet_rows(path, titles)
        raise EmbedkitError(f"{path}: unsupported corpus file; use .jsonl, .jsonl.gz or .parquet")
    if looks_like_hub_id(source):
        return lambda: _hub_rows(source, subset or "corpus", split or "corpus", titles)
    raise EmbedkitError(f"corpus {source}: no such local path, and not a Hugging Face dataset id (owner/name)")


def looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/", "~")) and not Path(source).suffix


def _jsonl_rows(path: Path, titles: bool = True) -> Iterator[tuple[str, str, str]]:
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        doc_id, text = _rows_from_record(obj, where, titles)
        yield where, doc_id, text


def _parquet_rows(path: Path, titles: bool = True) -> Iterator[tuple[str, str, str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:
        raise EmbedkitError(f"{path}: not a readable Parquet file ({exc})") from None
    row = 0
    for batch in table.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            row += 1
            doc_id, text = _rows_from_record(obj, f"{path}: row {row}", titles)
            yield f"{path}: row {row}", doc_id, text


def _hub_rows(dataset_id: str, subset: str, split: str, titles: bool = True) -> Iterator[tuple[str, str, str]]:
    from embedkit.data.hub import load_hub_dataset

    dataset = load_hub_dataset(dataset_id, subset, split, streaming=True)
    for row, obj in enumerate(dataset, start=1):
        where = f"{dataset_id}[{subset}/{split}] row {row}"
        doc_id, text = _rows_from_record(obj, where, titles)
        yield where, doc_id, text

