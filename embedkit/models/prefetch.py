"""The host side of packed encoding, off the device's critical path.

Texts are tokenised chunk by chunk with the fast tokenizer's batch API in a background thread; each chunk is
packed longest first into token-budget batches whose ``input_ids`` and ``cu_seqlens`` are ready-made CPU
tensors (pinned when they go to a GPU, so the copy can be non-blocking). The device loop only copies and
computes: it never waits for tokenisation after the first chunk, and builds no tensor from a Python list.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from embedkit.models.packing import bucket_seqlen, pack_by_token_budget

T = TypeVar("T")
Tokenize = Callable[[list[str]], list[list[int]]]


@dataclass
class HostBatch:
    """One packed batch, prepared on the host."""

    rows: np.ndarray          # (n,) positions of its texts in the input
    input_ids: torch.Tensor   # (tokens,) int64
    cu_seqlens: torch.Tensor  # (n + 1,) int32
    max_seqlen: int           # longest sequence, a Python int (no device sync to learn it)
    lengths: list[int]        # tokens of each sequence


def packed_batches(texts: list[str], tokenize: Tokenize, max_tokens: int, chunk_size: int = 4096,
                   pin_memory: bool = False, bucket: bool = False) -> Iterator[HostBatch]:
    """Tokenise ``texts`` ``chunk_size`` at a time and yield each chunk's token-budget batches.

    Args:
        tokenize: texts -> token ids per text (truncated, special tokens added; no padding).
        max_tokens: real tokens per batch (a longer text gets a batch of its own).
        pin_memory: page-lock the tensors (only useful when they are copied to a GPU).
        bucket: report :func:`bucket_seqlen` of the longest sequence as ``max_seqlen``.
    """
    for start in range(0, len(texts), chunk_size):
        ids = tokenize(texts[start:start + chunk_size])
        lengths = [len(x) for x in ids]
        for batch in pack_by_token_budget(lengths, max_tokens):
            batch_lengths = [lengths[i] for i in batch]
            flat = np.fromiter((t for i in batch for t in ids[i]), dtype=np.int64, count=sum(batch_lengths))
            cu_seqlens = np.zeros(len(batch) + 1, dtype=np.int32)
            np.cumsum(batch_lengths, out=cu_seqlens[1:])
            input_ids, cu = torch.from_numpy(flat), torch.from_numpy(cu_seqlens)
            if pin_memory:
                input_ids, cu = input_ids.pin_memory(), cu.pin_memory()
            longest = max(batch_lengths)
            yield HostBatch(np.asarray(batch, dtype=np.int64) + start, input_ids, cu,
                            bucket_seqlen(longest) if bucket else longest, batch_lengths)


_DONE = object()


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
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            slots.put(exc)

    worker = threading.Thread(target=produce, name="embedkit-tokenize", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
