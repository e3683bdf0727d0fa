"""The host pipeline of packed encoding: texts to packed batches, off the device's critical path.

A :class:`HostPipeline` tokenises texts in small chunks on worker threads (the fast tokenizer's batch call
runs in Rust without the GIL, so threads scale), packs the token ids into token-budget batches whose
``input_ids`` / ``cu_seqlens`` are ready-made CPU tensors (pinned when they go to a GPU, so the copy is
non-blocking), and queues them for the device loop, which only copies and computes.

Work is submitted per call (:meth:`HostPipeline.submit` returns a :class:`PackedJob`) and starts at once, so
a caller that knows its next texts (the next slice of a shard, the next shard) submits them before it
consumes the current job: their tokenisation runs while the device computes, and the device never waits
for the first batch of a call. Memory stays bounded: a job keeps at most ``window`` chunks in flight and
``depth`` batches queued.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from embedkit.models.packed.layout import bucket_seqlen, pack_by_token_budget

logger = logging.getLogger(__name__)

T = TypeVar("T")
Tokenize = Callable[[list[str]], list[list[int]]]


@dataclass
class HostBatch:
    """One packed batch, prepared on the host."""

    rows: np.ndarray          # (n,) positions of its texts in the job's input
    input_ids: torch.Tensor   # (tokens,) int64
    cu_seqlens: torch.Tensor  # (n + 1,) int32
    max_seqlen: int           # longest sequence (or its bucket), a Python int: no device sync to learn it
    lengths: list[int]        # tokens of each sequence


@dataclass
class _Chunk:
    """Token ids of consecutive texts, flattened: ``flat[offsets[i]:offsets[i] + lengths[i]]`` is text i."""

    rows: np.ndarray     # (n,) int64
    flat: np.ndarray     # (tokens,) int64
    lengths: np.ndarray  # (n,) int64

    @property
    def offsets(self) -> np.ndarray:
        out = np.zeros(len(self.lengths), dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=out[1:])
        return out


def _tokenize_chunk(tokenize: Tokenize, texts: list[str], first_row: int) -> _Chunk:
    ids = tokenize(texts)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    return _Chunk(np.arange(first_row, first_row + len(ids), dtype=np.int64), flat, lengths)


def _merge(chunks: list[_Chunk]) -> _Chunk:
    if len(chunks) == 1:
        return chunks[0]
    return _Chunk(np.concatenate([c.rows for c in chunks]), np.concatenate([c.flat for c in chunks]),
                  np.concatenate([c.lengths for c in chunks]))


def _to_tensor(array: np.ndarray, pin_memory: bool) -> torch.Tensor:
    if not pin_memory:
        return torch.from_numpy(array)
    out = torch.empty(array.shape, dtype=torch.from_numpy(array[:0]).dtype, pin_memory=True)
    out.numpy()[...] = array  # straight into page-locked memory (torch caches and reuses these blocks)
    return out


def _groups(lengths: np.ndarray, max_tokens: int, sort: bool) -> list[list[int]]:
    """Sequence indices per batch of at most ``max_tokens`` real tokens (a longer text gets its own)."""
    if sort:  # longest first: the padded (SDPA) attention then pads each batch little
        return pack_by_token_budget(lengths.tolist(), max_tokens)
    groups, current, used = [], [], 0  # input order: the varlen kernels do not care about length mixes
    for i, n in enumerate(lengths.tolist()):
        if current and used + n > max_tokens:
            groups.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        groups.append(current)
    return groups


def _select(chunk: _Chunk, group: list[int]) -> _Chunk:
    """The sequences ``group`` of ``chunk``, in that order, as one chunk."""
    sel = np.asarray(group, dtype=np.int64)
    lengths = chunk.lengths[sel]
    cu = np.zeros(len(sel) + 1, dtype=np.int64)
    np.cumsum(lengths, out=cu[1:])
    gather = np.repeat(chunk.offsets[sel] - cu[:-1], lengths) + np.arange(cu[-1], dtype=np.int64)  # (tokens,)
    return _Chunk(chunk.rows[sel], chunk.flat[gather], lengths)


def _make_batch(chunk: _Chunk, pin_memory: bool, bucket: bool) -> HostBatch:
    cu = np.zeros(len(chunk.lengths) + 1, dtype=np.int32)
    np.cumsum(chunk.lengths, out=cu[1:])
    longest = int(chunk.lengths.max())
    return HostBatch(chunk.rows, _to_tensor(chunk.flat, pin_memory), _to_tensor(cu, pin_memory),
                     bucket_seqlen(longest) if bucket else longest, chunk.lengths.tolist())


def _batches_of(pending: _Chunk, max_tokens: int, sort: bool, pin_memory: bool, bucket: bool,
                ) -> Iterator[HostBatch]:
    for group in _groups(pending.lengths, max_tokens, sort):
        yield _make_batch(_select(pending, group), pin_memory, bucket)


def packed_batches(texts: list[str], tokenize: Tokenize, max_tokens: int, chunk_size: int = 4096,
                   pin_memory: bool = False, bucket: bool = False, sort: bool = True) -> Iterator[HostBatch]:
    """Tokenise ``texts`` ``chunk_size`` at a time in this thread and yield each chunk's token-budget batches.

    The serial form of :class:`HostPipeline` (same batches for the same grouping); used where no thread pays.

    Args:
        tokenize: texts -> token ids per text (truncated, special tokens added; no padding).
        max_tokens: real tokens per batch (a longer text gets a batch of its own).
        pin_memory: page-lock the tensors (only useful when they are copied to a GPU).
        bucket: report :func:`bucket_seqlen` of the longest sequence as ``max_seqlen``.
        sort: pack each chunk longest first (for padded attention); else in input order.
    """
    for start in range(0, len(texts), chunk_size):
        yield from _batches_of(_tokenize_chunk(tokenize, texts[start:start + chunk_size], start), max_tokens, sort,
                               pin_memory, bucket)


def default_threads(device: torch.device) -> int:
    """Tokenising threads: on a GPU as many as the host can spare (one tokenizer thread gives ~0.3-1M tokens/s,
    a GPU takes 1.5M+); on CPU one, running ahead of the forward, which needs the cores far more."""
    if device.type != "cuda":
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus - 1))


_DONE = object()


def _put(slots: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first: a consumer that has gone stops reading a full queue."""
    while not stop.is_set():
        try:
            slots.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _drain(slots: queue.Queue) -> Iterator:
    """The producer's items up to ``_DONE``; an exception it handed over is raised here, in the consumer."""
    while True:
        item = slots.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


class PackedJob:
    """The packed batches of one call's texts, produced in the background; iterate it once.

    An exception in tokenisation is raised in the consumer; a consumer that stops early (``break``, an error)
    should :meth:`cancel` (iterating does it on exit).
    """

    def __init__(self, pool: ThreadPoolExecutor, texts: list[str], tokenize: Tokenize, max_tokens: int, *,
                 chunk_size: int, window: int, depth: int, sort: bool, sort_tokens: int, pin_memory: bool,
                 bucket: bool):
        self.texts, self.tokenize = texts, tokenize
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._args = (pool, tokenize, max_tokens, chunk_size, window, sort, sort_tokens, pin_memory, bucket)
        self._thread = threading.Thread(target=self._produce, name="embedkit-pack", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        pool, tokenize, max_tokens, chunk_size, window, sort, sort_tokens, pin_memory, bucket = self._args
        starts = range(0, len(self.texts), chunk_size)
        futures: dict[int, Future] = {}
        try:
            def submit(i: int) -> None:
                if i < len(starts) and not self._stop.is_set():
                    start = starts[i]
                    futures[i] = pool.submit(_tokenize_chunk, tokenize, self.texts[start:start + chunk_size], start)

            for i in range(window):
                submit(i)
            pending: list[_Chunk] = []
            pending_tokens = 0
            # unsorted: emit as soon as a budget is full; sorted: pack a window of several budgets at once
            group_tokens = sort_tokens if sort else max_tokens
            for i in range(len(starts)):
                chunk = futures.pop(i).result()
                submit(i + window)
                pending.append(chunk)
                pending_tokens += int(chunk.lengths.sum())
                last = i == len(starts) - 1
                if pending_tokens < group_tokens and not last:
                    continue
                merged = _merge(pending)
                groups = _groups(merged.lengths, max_tokens, sort)
                pending, pending_tokens = [], 0
                if not sort and not last and len(groups) > 1:  # keep the unfilled tail for the next chunks
                    pending = [_select(merged, groups.pop())]
                    pending_tokens = int(pending[0].lengths.sum())
                for group in groups:
                    if not _put(self._queue, _make_batch(_select(merged, group), pin_memory, bucket), self._stop):
                        return
            _put(self._queue, _DONE, self._stop)
        except BaseException as exc:  # handed to the consumer
            _put(self._queue, exc, self._stop)
        finally:
            for future in futures.values():
                future.cancel()

    def __iter__(self) -> Iterator[HostBatch]:
        try:
            yield from _drain(self._queue)
        finally:
            self.cancel()

    @property
    def cancelled(self) -> bool:
        """Whether the job was stopped (:meth:`cancel`, or iterated to its end)."""
        return self._stop.is_set()

    def cancel(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class PreparedJobs:
    """Jobs an encoder started for texts a later call will get (``prepare_documents``), oldest first; at most
    ``keep`` wait, so a caller that stopped asking for them holds bounded memory."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self.jobs: list[PackedJob] = []

    def add(self, texts: list[str], submit: Callable[[list[str]], PackedJob]) -> None:
        if not any(job.texts == texts for job in self.jobs):
            self.jobs.append(submit(texts))
            while len(self.jobs) > self.keep:
                self.jobs.pop(0).cancel()

    def take(self, texts: list[str]) -> PackedJob | None:
        """The job started for ``texts`` (those started before it are cancelled), or None."""
        for i, job in enumerate(self.jobs):
            if job.texts is texts or job.texts == texts:
                for stale in self.jobs[:i]:
                    stale.cancel()
                del self.jobs[:i + 1]
                return job
        return None


class HostPipeline:
    """Tokenising worker threads shared by every call of one encoder (see the module docstring).

    Args:
        threads: tokenising threads (:meth:`for_device` takes :func:`default_threads` for the device).
        chunk_size: texts per tokenizer call: small, so the first batch of a call is ready early.
        window: chunks of one job tokenised ahead of the packer (bounds memory; default 16 per thread).
        depth: packed batches queued ahead of the device (bounds memory; a deep queue absorbs the jitter of
            both sides: 4 overlapped a fake device 0.7, 16 0.9).
        pin_memory: page-lock batches (for a GPU).
        sort: pack longest first within ``sort_budgets`` token budgets (CPU: the padded attention fallback
            pads each batch to its longest text, and a CPU forward is so much slower than tokenising that
            waiting for a whole call's tokens costs nothing); else in input order (the varlen kernels need no
            sorting, and a GPU's first batch should not wait).
    """

    def __init__(self, threads: int = 1, chunk_size: int = 64, window: int | None = None, depth: int = 16,
                 pin_memory: bool = False, sort: bool = True, sort_budgets: int = 64):
        self.threads = max(1, int(threads))
        self.chunk_size, self.depth, self.pin_memory = chunk_size, depth, pin_memory
        self.window = window or 16 * self.threads
        self.sort, self.sort_budgets = sort, sort_budgets
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="embedkit-tokenize")

    @classmethod
    def for_device(cls, device: torch.device, threads: int | None = None, sort: bool | None = None) -> HostPipeline:
        cuda = device.type == "cuda"
        return cls(threads=default_threads(device) if threads is None else threads, pin_memory=cuda,
                   sort=not cuda if sort is None else sort)

    def submit(self, texts: list[str], tokenize: Tokenize, max_tokens: int, bucket: bool = False) -> PackedJob:
        """Start tokenising and packing ``texts`` now; iterate the job for its batches."""
        return PackedJob(self._pool, texts, tokenize, max_tokens, chunk_size=self.chunk_size, window=self.window,
                         depth=self.depth, sort=self.sort, sort_tokens=self.sort_budgets * max_tokens,
                         pin_memory=self.pin_memory, bucket=bucket)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` ahead of the consumer.

    An exception in the producer is raised in the consumer; stopping early (``break``, an error in the
    consumer) ends the producer at its next item.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(slots, item, stop):
                    return
            _put(slots, _DONE, stop)
        except BaseException as exc:  # handed to the consumer
            _put(slots, exc, stop)

    worker = threading.Thread(target=produce, name="embedkit-tokenize", daemon=True)
    worker.start()
    try:
        yield from _drain(slots)
    finally:
        stop.set()
        worker.join(timeout=5)
