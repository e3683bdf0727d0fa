"""Host-side batches: every text once, tensors that describe the packing, errors and early stops handled."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from embedkit.models.prefetch import packed_batches, prefetch

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
