"""Streamed, sharded, resumable corpus encoding.

The corpus is read in order and encoded shard by shard into ``work_dir/shards``; every finished shard is
recorded in ``shards-rank<r>.json`` (with a digest of its documents) only after its files are complete. A
killed run, started again with the same settings, skips the recorded shards and continues, so the result
equals an uninterrupted run. A recorded shard is skipped only while the corpus still holds the same
documents there (same digest); one that changed is encoded again. The same check lets an index rebuilt with
another backend reuse the shards an earlier build kept (``embedkit.index.build``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.artifacts import read_json, write_json
from embedkit.data.corpus import Corpus, digest_documents
from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

# A dense encoder returns (n, dim); a multi-vector one returns n arrays of (tokens_i, dim).
EncodeFn = Callable[[list[str]], "np.ndarray | list[np.ndarray]"]
PrepareFn = Callable[[list[str]], None]  # told the texts of a coming EncodeFn call


@dataclass
class Shard:
    index: int
    count: int
    folder: Path

    @property
    def embeddings_path(self) -> Path:
        return self.folder / f"emb-{self.index:05d}.npy"

    @property
    def lengths_path(self) -> Path:
        return self.folder / f"len-{self.index:05d}.npy"

    @property
    def sparse_path(self) -> Path:
        return self.folder / f"csr-{self.index:05d}.npz"

    @property
    def docs_path(self) -> Path:
        return self.folder / f"docs-{self.index:05d}.jsonl"

    def embeddings(self, mmap: bool = True) -> np.ndarray:
        return np.load(self.embeddings_path, mmap_mode="r" if mmap else None)

    def sparse(self) -> Any:
        """The shard's sparse vectors (kind sparse): a ``scipy.sparse`` CSR matrix (n, vocabulary)."""
        import scipy.sparse as sp

        return sp.load_npz(self.sparse_path)  # allow_pickle stays off: plain arrays only

    def lengths(self) -> np.ndarray | None:
        return np.load(self.lengths_path) if self.lengths_path.exists() else None

    def documents(self) -> Iterator[tuple[str, str]]:
        with open(self.docs_path, encoding="utf-8") as f:
            for line in f:
                obj = json.loads(line)
                yield obj["id"], obj["text"]


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_sparse(vectors: Any) -> bool:
    """Whether encoded vectors are a ``scipy.sparse`` matrix (kind sparse) rather than arrays."""
    return hasattr(vectors, "tocsr")


def stack_parts(parts: list[Any]) -> Any:
    """Encoded slices as one: a list of per-text arrays (colbert), a CSR matrix (sparse) or an array (dense)."""
    if isinstance(parts[0], list):
        return [vectors for part in parts for vectors in part]
    if is_sparse(parts[0]):
        import scipy.sparse as sp

        return sp.vstack(parts, format="csr")  # (len(texts), vocabulary)
    return np.concatenate(parts)  # (len(texts), dim)


def _write_shard(shard: Shard, ids: list[str], texts: list[str], vectors: Any) -> None:
    if is_sparse(vectors):
        import scipy.sparse as sp

        tmp = shard.sparse_path.with_name(shard.sparse_path.name + ".tmp.npz")
        sp.save_npz(tmp, vectors.tocsr(), compressed=False)
        os.replace(tmp, shard.sparse_path)
    elif isinstance(vectors, list):
        lengths = np.array([len(v) for v in vectors], dtype=np.int32)
        flat = np.concatenate(vectors).astype(np.float16) if vectors else np.zeros((0, 0), np.float16)
        _save_npy(shard.lengths_path, lengths)
        _save_npy(shard.embeddings_path, flat)  # (sum of tokens, dim)
    else:
        _save_npy(shard.embeddings_path, np.ascontiguousarray(vectors, dtype=np.float32))  # (n, dim)
    tmp = shard.docs_path.with_name(shard.docs_path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for doc_id, text in zip(ids, texts):
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    os.replace(tmp, shard.docs_path)


def count_lines_fast(path: Path) -> int | None:
    if not path.is_file() or path.suffix != ".jsonl" or path.stat().st_size > (4 << 30):
        return None
    count = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            count += chunk.count(b"\n")
    return count


def estimate_size(corpus: Corpus) -> int | None:
    path = Path(corpus.source)
    if path.is_dir():
        path = path / "corpus.jsonl"
    return count_lines_fast(path)


def encode_corpus(corpus: Corpus, encode: EncodeFn, work_dir: str | Path, settings: dict[str, Any],
                  shard_size: int = 8192, progress: bool = True,
                  rank: int = 0, world_size: int = 1, prepare: PrepareFn | None = None) -> list[Shard]:
    """Encode ``corpus`` into shards under ``work_dir/shards``, resuming recorded ones.

    ``settings`` (model fingerprint, kind, lengths...) must equal those of the interrupted run;
    otherwise resuming would mix embeddings of two models, and the run is refused. With
    ``world_size > 1`` this process encodes only shards ``i`` with ``i % world_size == rank``.
    ``prepare`` (an encoder's ``prepare_documents``) is told the texts of the next ``encode`` call before the
    current one runs, the next shard's included, so their tokenisation overlaps the device's work.
    """
    from embedkit.quiet import progress_bar

    folder = Path(work_dir) / "shards"
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / f"shards-rank{rank}.json"
    state = read_json(state_path) if state_path.exists() else {"settings": settings, "done": {}}
    if state["settings"] != settings:
        raise EmbedkitError(f"{work_dir} holds an interrupted run with other settings; delete it or pass --overwrite")
    done: dict[str, int] = state["done"]
    digests: dict[str, str] = state.setdefault("digests", {})
    if done:
        logger.info("%d shard(s) already encoded: only the rest is encoded", len(done))
    total = estimate_size(corpus)
    total = -(-total // world_size) if total else None  # this rank's share
    bar = progress_bar(total=total, unit="doc", desc="encoding", disable=not progress or rank != 0, dynamic_ncols=True)
    shards: list[Shard] = []
    def shards_of_this_rank():
        """(number, ids, texts, digest, must_encode) of this rank's shards, counting the corpus's shards."""
        nonlocal count
        for number, (ids, texts) in enumerate(corpus.batches(shard_size)):
            count = number + 1
            if number % world_size != rank:
                continue
            key, digest = str(number), digest_documents(ids, texts).hexdigest()
            encoded = key in done and digests.get(key, digest) == digest and done[key] == len(ids)
            yield number, ids, texts, digest, not encoded

    count = 0  # shards in the corpus
    todo = shards_of_this_rank()
    current = next(todo, None)
    while current is not None:
        number, ids, texts, digest, must_encode = current
        upcoming = next(todo, None) if prepare is not None else None  # one shard read ahead
        shard = Shard(number, len(ids), folder)
        key = str(number)
        if must_encode:
            if key in done:
                logger.info("shard %d: the corpus holds other documents there now; encoding it again", number)
            following = upcoming[2] if upcoming is not None and upcoming[4] else None
            _write_shard(shard, ids, texts, _encode_in_steps(encode, texts, bar, prepare=prepare, following=following))
            done[key] = len(ids)
            digests[key] = digest
            write_json(state_path, state)
        else:
            bar.update(len(ids))  # encoded before, from the same documents
        shards.append(shard)
        current = upcoming if prepare is not None else next(todo, None)
    bar.close()
    stale = [key for key in done if int(key) >= count]
    for key in stale:  # the corpus got shorter since those shards were encoded
        done.pop(key)
        digests.pop(key, None)
    if stale:
        write_json(state_path, state)
    return shards


def _encode_in_steps(encode: EncodeFn, texts: list[str], bar: Any, step: int = 1024,
                     prepare: PrepareFn | None = None, following: list[str] | None = None) -> Any:
    """Encode a shard in slices so the progress bar moves more often than once a shard; with ``prepare``, each
    slice is announced before the previous one is encoded (the last announces ``following``'s first)."""
    slices = [texts[start:start + step] for start in range(0, len(texts), step)]
    if following:
        slices.append(following[:step])
    parts = []
    if prepare is not None and slices:
        prepare(slices[0])
    for i, part in enumerate(slices[:len(slices) - (1 if following else 0)]):
        if prepare is not None and i + 1 < len(slices):
            prepare(slices[i + 1])
        parts.append(encode(part))
        bar.update(len(part))
    return stack_parts(parts)


def list_shards(work_dir: str | Path) -> list[Shard]:
    """All recorded shards of every rank, in corpus order.

    A shard can be recorded twice when a run is resumed with another number of processes (rank 0 of the
    second run redoes what rank 1 of the first had done); its files are the same, so it is listed once.
    """
    folder = Path(work_dir) / "shards"
    shards: dict[int, Shard] = {}
    for state_path in sorted(folder.glob("shards-rank*.json")):
        for number, count in read_json(state_path)["done"].items():
            shards[int(number)] = Shard(int(number), count, folder)
    return [shards[number] for number in sorted(shards)]
