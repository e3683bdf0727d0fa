"""Host-side batches: every text once, tensors that describe the packing, errors and early stops handled."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from embedkit.models.packed.host import packed_batches, prefetch

pytestmark = pytest.mark.packed


def _fake_tokenize(texts: list[str]) -> list[list[int]]:
    return [[len(t)] * len(t) for t in texts]  # a text of k characters -> k tokens of value k


def test_packed_batches_cover_every_text_in_chunks():
    texts = ["x" * n for n in (5, 1, 9, 3, 7, 2, 8)]
    seen = []
    for batch in packed_batches(texts, _fake_tokenize, max_tokens=10, chunk_size=3):
        assert batch.input_ids.dtype == torch.int64 and batch.cu_seqlens.dtype == torch.int32
        assert batch.cu_seqlens[-1] == batch.input_ids.numel() == sum(batch.lengths)
        assert batch.max_seqlen == max(batch.lengths)
        for row, start, end in zip(batch.rows, batch.cu_seqlens[:-1], batch.cu_seqlens[1:]):
            assert batch.input_ids[start:end].tolist() == _fake_tokenize([texts[row]])[0]
        seen += batch.rows.tolist()
    assert sorted(seen) == list(range(len(texts)))


def test_bucketed_max_seqlen_is_an_upper_bound():
    (batch,) = packed_batches(["x" * 70, "x" * 3], _fake_tokenize, max_tokens=100, bucket=True)
    assert batch.max_seqlen == 128


def test_prefetch_keeps_order_and_raises_producer_errors():
    assert list(prefetch(iter(range(10)), depth=2)) == list(range(10))

    def broken():
        yield 1
        raise ValueError("bad text")

    with pytest.raises(ValueError, match="bad text"):
        list(prefetch(broken()))


def test_prefetch_stops_the_producer_when_the_consumer_stops():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    for item in prefetch(endless(), depth=2):
        if item == 3:
            break
    assert not any(t.name == "embedkit-tokenize" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3 + 1 + 2 + 1  # consumed, in flight, queue depth, one more at most
    assert np.all(np.diff(produced) == 1)


@pytest.mark.parametrize("threads,sort", [(1, True), (3, False)])
def test_pipeline_covers_every_text_once_with_its_tokens(threads, sort):
    from embedkit.models.packed.host import HostPipeline

    texts = ["x" * n for n in (5, 1, 9, 3, 7, 2, 8, 4, 6, 30, 1)]
    pipeline = HostPipeline(threads=threads, chunk_size=2, sort=sort)
    try:
        seen = []
        for batch in pipeline.submit(texts, _fake_tokenize, max_tokens=12):
            assert batch.cu_seqlens[-1] == batch.input_ids.numel() == sum(batch.lengths)
            assert sum(batch.lengths) <= 12 or len(batch.lengths) == 1
            for row, start, end in zip(batch.rows, batch.cu_seqlens[:-1], batch.cu_seqlens[1:]):
                assert batch.input_ids[start:end].tolist() == _fake_tokenize([texts[row]])[0]
            seen += batch.rows.tolist()
        assert sorted(seen) == list(range(len(texts)))
        if not sort:
            assert seen == list(range(len(texts)))  # input order when the kernels need no sorting
    finally:
        pipeline.close()


def test_pipeline_runs_ahead_of_a_slow_device_across_calls():
    """While a slow device works through call 1, the rest of call 1 and call 2 (submitted ahead, as the index
    does with its next slice) are tokenised: their tokenisation is logged before the device finishes call 1."""
    import time

    from embedkit.models.packed.host import HostPipeline

    log, lock = [], threading.Lock()

    def tokenize(texts):
        with lock:
            log.append(("tok", texts[0][:2]))
        return _fake_tokenize(texts)

    calls = {name: [f"{name}-" + "x" * (i % 7 + 3) for i in range(40)] for name in ("c1", "c2")}
    pipeline = HostPipeline(threads=1, chunk_size=4, window=4, depth=2, sort=False)  # as on a GPU
    try:
        first = pipeline.submit(calls["c1"], tokenize, max_tokens=40)
        second = pipeline.submit(calls["c2"], tokenize, max_tokens=40)  # prepared ahead
        for _ in first:
            time.sleep(0.02)  # the device
            with lock:
                log.append(("dev", "c1"))
        last_device = max(i for i, event in enumerate(log) if event == ("dev", "c1"))
        tokenised_c1 = [i for i, event in enumerate(log) if event == ("tok", "c1")]
        assert tokenised_c1[-1] > log.index(("dev", "c1"))  # call 1 was still tokenised while the device ran
        assert log.index(("tok", "c2")) < last_device  # and call 2 was started before call 1 ended
        assert sum(len(b.rows) for b in second) == len(calls["c2"])
    finally:
        pipeline.close()


def test_pipeline_raises_tokenizer_errors_and_cancels():
    from embedkit.models.packed.host import HostPipeline

    def broken(texts):
        if any("bad" in t for t in texts):
            raise ValueError("bad text")
        return _fake_tokenize(texts)

    pipeline = HostPipeline(threads=2, chunk_size=2)
    try:
        with pytest.raises(ValueError, match="bad text"):
            list(pipeline.submit(["ok"] * 9 + ["bad"], broken, max_tokens=8))
        job = pipeline.submit(["ok"] * 1000, broken, max_tokens=4)
        next(iter(job))
        job.cancel()
        assert not job._thread.is_alive()
    finally:
        pipeline.close()
