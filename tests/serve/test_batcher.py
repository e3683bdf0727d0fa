"""The micro-batcher alone, on a work that records what it computes: slicing and turn-taking, isolation of a
failing request, cancelled work never computed, the bounded queue, and no wait for a lone request."""

from __future__ import annotations

import asyncio
import threading

import pytest

from embedkit.serve.batcher import Busy, MicroBatcher


class Upper:
    """Upper-cases texts; fails any batch holding "bad"; records each call's pieces as (job tag, texts)."""

    def __init__(self):
        self.calls: list[list[tuple[str, list[str]]]] = []
        self.gate = threading.Event()
        self.gate.set()

    def run(self, pieces):
        assert self.gate.wait(30)
        self.calls.append([(p.params, p.texts) for p in pieces])
        if any("bad" in t for p in pieces for t in p.texts):
            raise ValueError("bad text")
        return [[t.upper() for t in p.texts] for p in pieces]


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _with_worker(batcher, body):
    worker = asyncio.create_task(batcher.run())
    try:
        return await body()
    finally:
        worker.cancel()
        batcher.close()


def test_concurrent_jobs_share_a_batch_and_keep_their_results():
    work = Upper()
    batcher = MicroBatcher({"up": work}, max_batch=8, max_wait_ms=50)

    async def body():
        jobs = [batcher.submit("up", [f"{i}a", f"{i}b"], params=i) for i in range(3)]
        return await asyncio.gather(*(j.future for j in jobs))

    assert _run(_with_worker(batcher, body)) == [["0A", "0B"], ["1A", "1B"], ["2A", "2B"]]
    assert len(work.calls) == 1 and [tag for tag, _ in work.calls[0]] == [0, 1, 2]


def test_a_big_job_is_sliced_and_takes_turns_with_small_ones():
    work = Upper()
    work.gate.clear()
    batcher = MicroBatcher({"up": work}, max_batch=4, max_wait_ms=0)

    async def body():
        big = batcher.submit("up", [f"big{i}" for i in range(10)], params="big")
        await asyncio.sleep(0.05)  # the worker holds the first slice of the big job
        small = batcher.submit("up", ["small"], params="small")
        work.gate.set()
        return await asyncio.gather(big.future, small.future)

    big, small = _run(_with_worker(batcher, body))
    assert big == [f"BIG{i}" for i in range(10)] and small == ["SMALL"]
    order = [[tag for tag, _ in call] for call in work.calls]
    # slice 1 of the big job, then the small job joins the next batch before the big job's last slice
    assert order[0] == ["big"] and "small" in order[1] and order.index(["big"], 1) >= 1
    assert all(sum(len(texts) for _, texts in call) <= 4 for call in work.calls)


def test_a_failing_request_fails_alone():
    work = Upper()
    batcher = MicroBatcher({"up": work}, max_batch=16, max_wait_ms=50)

    async def body():
        jobs = [batcher.submit("up", texts, params=i) for i, texts in enumerate([["ok"], ["a bad one"], ["fine"]])]
        return await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)

    good, bad, other = _run(_with_worker(batcher, body))
    assert good == ["OK"] and other == ["FINE"]
    assert isinstance(bad, ValueError) and str(bad) == "bad text"
    assert len(work.calls[0]) == 3 and [len(c) for c in work.calls[1:]] == [1, 1, 1]  # together, then alone


def test_cancelled_jobs_are_never_computed():
    work = Upper()
    work.gate.clear()
    batcher = MicroBatcher({"up": work}, max_batch=4, max_wait_ms=0)

    async def body():
        first = batcher.submit("up", ["first"], params="first")
        await asyncio.sleep(0.05)  # held in the model thread
        gone = batcher.submit("up", ["x"] * 6, params="gone")
        stays = batcher.submit("up", ["y"], params="stays")
        assert batcher.queued == 7
        batcher.cancel(gone)
        assert batcher.queued == 1
        work.gate.set()
        return await asyncio.gather(first.future, stays.future)

    assert _run(_with_worker(batcher, body)) == [["FIRST"], ["Y"]]
    assert "gone" not in [tag for call in work.calls for tag, _ in call]


def test_the_queue_is_bounded():
    batcher = MicroBatcher({"up": Upper()}, max_batch=4, max_queue=5)

    async def body():
        batcher.submit("up", ["a"] * 4)
        with pytest.raises(Busy) as busy:
            batcher.submit("up", ["b"] * 2)
        assert busy.value.retry_after >= 1
        batcher.submit("up", ["c"])  # still fits

    _run(body())
    alone = MicroBatcher({"up": Upper()}, max_batch=4, max_queue=5)

    async def big_alone():
        alone.submit("up", ["d"] * 9)  # larger than the queue, but alone in it: accepted

    _run(big_alone())


def test_a_lone_request_does_not_wait_for_company():
    """With a 10-minute batching wait, a lone request still completes (well within the test's bound)."""
    batcher = MicroBatcher({"up": Upper()}, max_batch=8, max_wait_ms=600_000)

    async def body():
        return await batcher.submit("up", ["alone"]).future

    assert _run(_with_worker(batcher, body)) == ["ALONE"]


class Timed:
    """Takes ``per_token`` seconds per estimated token (a text's cost is its length), so the batcher measures a
    known rate; records each call's (job tag, texts)."""

    def __init__(self, per_token: float = 0.001):
        self.per_token = per_token
        self.calls: list[list[tuple[str, list[str]]]] = []

    def run(self, pieces):
        import time

        self.calls.append([(p.params, p.texts) for p in pieces])
        time.sleep(self.per_token * sum(len(t) for p in pieces for t in p.texts))
        return [[t.upper() for t in p.texts] for p in pieces]


def test_batches_are_filled_by_token_budget_and_a_small_job_waits_one_slice():
    """At 1 ms a token and a 40 ms slice, a 600-token job is computed in slices of about 40 tokens, whatever
    max_batch allows; a one-text job submitted meanwhile runs in the very next batch."""
    work = Timed()
    batcher = MicroBatcher({"up": work}, max_batch=64, max_wait_ms=0, slice_seconds=0.04, cost=len)

    async def body():
        warm = batcher.submit("up", ["w" * 10], params="warm")  # measures the rate
        await warm.future
        big = batcher.submit("up", ["b" * 10] * 60, params="big")
        while len(work.calls) < 3:  # bounded by the test's 60 s
            await asyncio.sleep(0.005)
        small = batcher.submit("up", ["s"], params="small")
        calls_before = len(work.calls)
        await small.future
        waited = len(work.calls) - calls_before
        await big.future
        return waited

    waited = _run(_with_worker(batcher, body))
    assert waited <= 2  # the slice running when it came, then its own batch
    big_slices = [sum(len(t) for tag, texts in call if tag == "big" for t in texts) for call in work.calls]
    assert max(big_slices) <= 80 and len([s for s in big_slices if s]) >= 6  # ~40-token slices, not one batch


def test_a_job_that_cannot_finish_in_time_is_refused_up_front():
    from embedkit.serve.batcher import TooLarge

    work = Timed()
    batcher = MicroBatcher({"up": work}, max_batch=64, max_wait_ms=0, slice_seconds=0.05, deadline=2.5, cost=len)

    async def body():
        await batcher.submit("up", ["w" * 20], params="warm").future  # ~1,000 tokens a second measured
        with pytest.raises(TooLarge, match="more than its 2.5 s time-out"):
            batcher.submit("up", ["x" * 100] * 30, params="huge")  # ~3 s alone
        ahead = batcher.submit("up", ["a" * 100] * 16, params="ahead")  # ~1.6 s
        small = batcher.submit("up", ["s" * 100], params="small")  # within one slice: never refused up front
        with pytest.raises(Busy) as busy:
            batcher.submit("up", ["y" * 100] * 20, params="late")  # ~2 s, taking turns with ~1.7 s ahead
        assert 1 <= busy.value.retry_after <= 3 and "queued ahead" in str(busy.value)
        await asyncio.gather(ahead.future, small.future)
        return [tag for call in work.calls for tag, _ in call]

    tags = _run(_with_worker(batcher, body))
    assert "huge" not in tags and "late" not in tags  # refused work is never computed
