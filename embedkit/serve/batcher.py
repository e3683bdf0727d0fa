"""Micro-batching of concurrent requests onto one model thread, each request isolated and bounded.

A request is a :class:`Job`: a list of texts (queries, inputs or documents) for one kind of work. The worker
takes up to ``max_batch`` texts from the queued jobs of one kind and key and computes them in one call on its
own thread; a job larger than that is computed in slices, and a sliced job goes behind the others (round
robin: it rejoins the queue after requests that arrived while its slice was computed), so one big request
cannot hold the model while small ones wait. The queue is bounded (``max_queue``
texts: :class:`Busy` beyond it). A job whose client went away or timed out is cancelled and its texts not yet
computed are dropped. When a batch fails, its requests are computed again one by one, so only the request
that fails gets the error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class Busy(Exception):
    """The queue is full; ``retry_after`` is the seconds its current content takes, at the measured rate."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy (queue full); retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(eq=False)
class Job:
    work: str
    texts: list[str]
    params: Any
    key: Hashable
    future: asyncio.Future
    next: int = 0          # texts before this one have been handed to the model
    done: int = 0          # texts computed
    cancelled: bool = False
    results: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.texts)


@dataclass(eq=False)
class Piece:
    """A slice of one job's texts inside a batch."""

    job: Job
    start: int
    stop: int

    @property
    def texts(self) -> list[str]:
        return self.job.texts[self.start:self.stop]

    @property
    def params(self) -> Any:
        return self.job.params


class Work(Protocol):
    def run(self, pieces: list[Piece]) -> list[Sequence[Any]]:
        """One result sequence per piece, one entry per text of that piece (runs on the model thread)."""


SKIPPED = object()  # a piece whose job was cancelled while its batch waited


class MicroBatcher:
    def __init__(self, works: dict[str, Work], max_batch: int = 64, max_wait_ms: float = 2.0,
                 max_queue: int = 2048, on_batch: Callable[[str, int, float], None] | None = None):
        self.works = works
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.queued = 0            # texts waiting (not yet handed to the model), cancelled jobs excluded
        self.batches = 0
        self.texts_computed = 0
        self._rate = 0.0           # texts per second of recent batches (for Retry-After)
        self._queue: deque[Job] = deque()
        self._behind: list[Job] = []  # sliced jobs of the running batch
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="embedkit-model")

    # ------------------------------------------------------------------ event-loop side

    def submit(self, work: str, texts: list[str], params: Any = None, key: Hashable = None) -> Job:
        """Queue ``texts``; :class:`Busy` when they do not fit (a request alone in the queue always fits)."""
        job = Job(work, list(texts), params, key, asyncio.get_running_loop().create_future())
        if not job.texts:
            job.future.set_result([])
            return job
        if self.queued and self.queued + len(job.texts) > self.max_queue:
            raise Busy(self.retry_after())
        self._queue.append(job)
        self.queued += len(job.texts)
        self._wake.set()
        return job

    def cancel(self, job: Job) -> None:
        """Drop the job's texts not yet computed (its client went away, timed out, or a slice failed)."""
        if job.cancelled:
            return
        job.cancelled = True
        self.queued -= len(job.texts) - job.next
        job.next = len(job.texts)
        if not job.future.done():
            job.future.cancel()

    def retry_after(self) -> int:
        return max(1, math.ceil(self.queued / self._rate)) if self._rate else 1

    def _live(self) -> int:
        return sum(1 for job in self._queue if not job.cancelled and job.next < len(job.texts))

    def _take(self) -> tuple[str | None, list[Piece]]:
        """Up to ``max_batch`` texts of one (work, key), head of the queue first; sliced jobs go to the back."""
        pieces: list[Piece] = []
        budget, chosen = self.max_batch, None
        keep: deque[Job] = deque()
        for job in self._queue:
            if job.cancelled or job.next >= len(job.texts):
                continue
            if budget and chosen in (None, (job.work, job.key)):
                chosen = (job.work, job.key)
                take = min(budget, len(job.texts) - job.next)
                pieces.append(Piece(job, job.next, job.next + take))
                job.next += take
                budget -= take
                self.queued -= take
                if job.next < len(job.texts):
                    self._behind.append(job)  # queued again after this batch, behind requests that came meanwhile
            else:
                keep.append(job)
        self._queue = keep
        return (chosen[0] if chosen else None), pieces

    async def run(self) -> None:
        """The worker: runs until cancelled (the app's lifespan)."""
        loop = asyncio.get_running_loop()
        while True:
            live = self._live()
            if not live:
                self._wake.clear()
                await self._wake.wait()
                continue
            if live > 1 and self.max_wait and self.queued < self.max_batch:
                await asyncio.sleep(self.max_wait)  # others are arriving: let them join (a lone request never waits)
            work, pieces = self._take()
            if not pieces:
                continue
            try:
                await self._run_batch(loop, work, pieces)
            except Exception:  # a bug here must not stop the worker: every later request would time out
                logger.exception("serving a %s batch failed", work)
                for piece in pieces:
                    if not piece.job.future.done():
                        piece.job.future.set_exception(RuntimeError("internal error while computing this request"))
                        self.cancel(piece.job)
            finally:
                self._queue.extend(self._behind)  # round robin: one slice per request per turn
                self._behind.clear()

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, work: str, pieces: list[Piece]) -> None:
        start = time.perf_counter()
        outcomes = await loop.run_in_executor(self._executor, self._compute, work, pieces)
        seconds = time.perf_counter() - start
        computed = sum(p.stop - p.start for p, o in zip(pieces, outcomes) if o is not SKIPPED)
        if computed:
            self.batches += 1
            self.texts_computed += computed
            rate = computed / max(seconds, 1e-6)
            self._rate = rate if not self._rate else 0.8 * self._rate + 0.2 * rate
            if self.on_batch is not None:
                self.on_batch(work, computed, seconds)
        for piece, outcome in zip(pieces, outcomes):
            self._deliver(piece, outcome)

    def _deliver(self, piece: Piece, outcome: Any) -> None:
        job = piece.job
        if outcome is SKIPPED or job.future.done():
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
            self.cancel(job)  # its other slices are not computed
            return
        job.results[piece.start:piece.stop] = list(outcome)
        job.done += piece.stop - piece.start
        if job.done == len(job.texts):
            job.future.set_result(job.results)

    # ------------------------------------------------------------------ model-thread side

    def _compute(self, work: str, pieces: list[Piece]) -> list[Any]:
        """Each piece's results, an exception for a piece that failed alone, or SKIPPED."""
        live = [p for p in pieces if not p.job.cancelled]  # clients that went away while the batch waited
        out: dict[int, Any] = {}
        runner = self.works[work]
        if live:
            try:
                out = dict(zip(map(id, live), runner.run(live)))
            except Exception as exc:  # noqa: BLE001 - isolate: rerun each request alone
                if len(live) == 1:
                    out = {id(live[0]): exc}
                else:
                    logger.info("a %s batch of %d requests failed (%s); computing them one by one", work, len(live),
                                exc)
                    for piece in live:
                        try:
                            out[id(piece)] = runner.run([piece])[0]
                        except Exception as one:  # noqa: BLE001 - this request's own failure
                            out[id(piece)] = one
        return [out.get(id(p), SKIPPED) for p in pieces]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
