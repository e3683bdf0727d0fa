"""Micro-batching of concurrent requests onto one model thread, each request isolated and bounded.

A request is a :class:`Job`: a list of texts (queries, inputs or documents) for one kind of work. The worker
takes texts from the queued jobs of one kind and key, head of the queue first, and computes them in one call on
its own thread. A batch is bounded by ``max_batch`` texts and by a token budget: each text costs its estimated
tokens (``cost``), and the budget is what the model computes in ``slice_seconds`` at the rate measured on
recent batches of that work, so a call takes about ``slice_seconds`` whatever the texts' lengths. A job larger
than a batch is computed in slices, and a sliced job goes behind the others (round robin: it rejoins the queue
after requests that arrived while its slice was computed), so a single query waits about one slice beside the
largest request. The queue is bounded (``max_queue`` texts: :class:`Busy` beyond it), and with a ``deadline``
a job that cannot finish within it at the measured rate is refused when it arrives, instead of being computed
and dropped: :class:`Busy` with the seconds after which the work ahead of it leaves it time, or
:class:`TooLarge` when it alone takes longer. A job whose client went away or timed out is cancelled and its
texts not yet computed are dropped. When a batch fails, its requests are computed again one by one, so only
the request that fails gets the error.
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
    """The queue is full, or too much work is ahead of a job for it to finish by the deadline; ``retry_after``
    is the seconds after which, at the measured rate, it would (the queue ahead having been computed)."""

    def __init__(self, retry_after: int, why: str = "queue full"):
        super().__init__(f"the server is busy ({why}); retry in {retry_after} s")
        self.retry_after = retry_after


class TooLarge(Exception):
    """A job that alone takes longer than the deadline at the measured rate: retrying would not help."""

    def __init__(self, seconds: float, deadline: float):
        super().__init__(f"this request needs about {seconds:.0f} s of model time at the rate this server measures, "
                         f"more than its {deadline:g} s time-out (--request-timeout): send fewer or shorter texts")
        self.seconds = seconds


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
    costs: list[int] = field(default_factory=list)  # estimated tokens of each text (1 each when not given)
    cum: list[int] = field(default_factory=list)     # cum[i]: cost of texts[:i]

    def __post_init__(self) -> None:
        self.results = [None] * len(self.texts)
        self.costs = self.costs or [1] * len(self.texts)
        self.cum = [0]
        for c in self.costs:
            self.cum.append(self.cum[-1] + c)

    @property
    def left(self) -> int:
        """Cost of the texts not yet handed to the model."""
        return self.cum[-1] - self.cum[self.next]


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


FIRST_SLICE = 512  # tokens of a work's first batch, before its rate is measured


class MicroBatcher:
    def __init__(self, works: dict[str, Work], max_batch: int = 64, max_wait_ms: float = 2.0,
                 max_queue: int = 2048, on_batch: Callable[[str, int, float], None] | None = None,
                 slice_seconds: float | None = None, deadline: float | None = None,
                 cost: Callable[[str], int] | None = None):
        self.works = works
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.slice_seconds = slice_seconds  # None: batches bounded by max_batch texts only
        self.deadline = deadline            # None: no job refused for its expected time
        self.cost = cost
        self.queued = 0            # texts waiting (not yet handed to the model), cancelled jobs excluded
        self.batches = 0
        self.texts_computed = 0
        self._rate = 0.0           # texts per second of recent batches (for Retry-After)
        self._token_rate: dict[str, float] = {}  # estimated tokens per second of recent batches, per work
        self._queue: deque[Job] = deque()
        self._behind: list[Job] = []  # sliced jobs of the running batch
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="embedkit-model")

    # ------------------------------------------------------------------ event-loop side

    def submit(self, work: str, texts: list[str], params: Any = None, key: Hashable = None) -> Job:
        """Queue ``texts``; :class:`Busy` when they do not fit (a request alone in the queue always fits)."""
        texts = list(texts)
        costs = [max(1, self.cost(t)) for t in texts] if self.cost else []
        job = Job(work, texts, params, key, asyncio.get_running_loop().create_future(), costs=costs)
        if not job.texts:
            job.future.set_result([])
            return job
        if self.queued and self.queued + len(job.texts) > self.max_queue:
            raise Busy(self.retry_after())
        self._check_deadline(job)
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

    def seconds_ahead(self, tokens: float = math.inf) -> float:
        """Model time, at the measured rates, of the queued work computed before a job of ``tokens`` finishes:
        taking turns slice by slice, each job ahead delays it by at most its own size (the smaller of the
        two: a big job ahead is mostly computed after a small one)."""
        total = 0.0
        for job in [*self._queue, *self._behind]:
            rate = self._token_rate.get(job.work)
            if rate and not job.cancelled:
                total += min(job.left, tokens) / rate
        return total

    def _check_deadline(self, job: Job) -> None:
        """Refuse a job that cannot finish within the deadline at the measured rate. Nothing is refused before
        its work's rate is measured, nor a job of at most FIRST_SLICE tokens (about one slice: refusing it
        would save little, and one slow batch must not make every small request fail)."""
        rate = self._token_rate.get(job.work)
        if not (self.deadline and rate) or job.left <= FIRST_SLICE:
            return
        own = job.left / rate
        if own > self.deadline:
            raise TooLarge(own, self.deadline)
        ahead = self.seconds_ahead(job.left)
        if ahead + own > self.deadline:
            raise Busy(max(1, math.ceil(ahead + own - self.deadline)),
                       f"about {ahead:.0f} s of work is queued ahead of this request's {own:.0f} s, more than the "
                       f"{self.deadline:g} s time-out")

    def _budget(self, work: str) -> float:
        """Tokens of one batch of ``work``: ``slice_seconds`` at its measured rate (a first batch: FIRST_SLICE)."""
        if self.slice_seconds is None or self.cost is None:
            return math.inf
        rate = self._token_rate.get(work)
        return rate * self.slice_seconds if rate else FIRST_SLICE

    def _live(self) -> int:
        return sum(1 for job in self._queue if not job.cancelled and job.next < len(job.texts))

    def _take(self) -> tuple[str | None, list[Piece]]:
        """Up to ``max_batch`` texts and the token budget of one (work, key), head of the queue first (its first
        text always, however long); sliced jobs go to the back."""
        pieces: list[Piece] = []
        budget, chosen, tokens = self.max_batch, None, math.inf
        keep: deque[Job] = deque()
        for job in self._queue:
            if job.cancelled or job.next >= len(job.texts):
                continue
            if chosen is None:
                chosen, tokens = (job.work, job.key), self._budget(job.work)
            take = 0
            if budget and tokens > 0 and chosen == (job.work, job.key):
                end = len(job.texts)
                while job.next + take < end and take < budget and \
                        (job.cum[job.next + take + 1] - job.cum[job.next] <= tokens or not pieces and not take):
                    take += 1
            if not take:
                keep.append(job)
                continue
            pieces.append(Piece(job, job.next, job.next + take))
            tokens -= job.cum[job.next + take] - job.cum[job.next]
            job.next += take
            budget -= take
            self.queued -= take
            if job.next < len(job.texts):
                self._behind.append(job)  # queued again after this batch, behind requests that came meanwhile
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
        tokens = sum(p.job.cum[p.stop] - p.job.cum[p.start] for p, o in zip(pieces, outcomes) if o is not SKIPPED)
        if computed:
            self.batches += 1
            self.texts_computed += computed
            rate = computed / max(seconds, 1e-6)
            self._rate = rate if not self._rate else 0.8 * self._rate + 0.2 * rate
            token_rate = tokens / max(seconds, 1e-6)
            old = self._token_rate.get(work)
            self._token_rate[work] = token_rate if not old else 0.7 * old + 0.3 * token_rate
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
