"""Packing helpers: float32 pooling whatever the hidden dtype, host-side unpadding equal to the device one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from embedkit.models.packed.layout import cu_seqlens_from_lengths, pool_packed, unpad, unpad_from_lengths

pytestmark = pytest.mark.packed


def test_mean_pooling_of_long_bf16_documents_is_the_float32_mean():
    """Long documents whose values share a large offset: a bf16 accumulator (what CUDA's atomics do) would lose
    most of the last additions; the pooled vector must be the float32 mean of the bf16 values, in float32."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([8192, 3, 20000])
    hidden = (torch.randn(int(lengths.sum()), 16, generator=generator) + 4.0).bfloat16()
    cu_seqlens, _ = cu_seqlens_from_lengths(lengths)
    pooled = pool_packed(hidden, cu_seqlens, "mean")
    assert pooled.dtype == torch.float32
    reference = torch.stack([part.double().mean(0) for part in hidden.split(lengths.tolist())]).float()
    torch.testing.assert_close(pooled, reference, atol=1e-5, rtol=1e-5)
    half = pool_packed(hidden.half(), cu_seqlens, "mean")  # fp16 sums of 20,000 values near 4 would overflow
    assert torch.isfinite(half).all()
    first = pool_packed(hidden, cu_seqlens, "cls")
    assert first.dtype == torch.float32 and torch.equal(first, hidden[cu_seqlens[:-1].long()].float())


@pytest.mark.parametrize("seed", range(3))
def test_host_unpad_equals_device_unpad(seed):
    rng = np.random.default_rng(seed)
    batch, seq_len = 7, 13
    lengths = rng.integers(0, seq_len + 1, size=batch)
    starts = np.array([rng.integers(0, seq_len - n + 1) for n in lengths])  # left, right or both padding
    mask = torch.zeros(batch, seq_len, dtype=torch.long)
    for row, (start, n) in enumerate(zip(starts, lengths)):
        mask[row, start:start + n] = 1
    indices, cu_seqlens, longest = unpad_from_lengths(starts, lengths, seq_len)
    expected = unpad(mask)
    assert torch.equal(indices, expected[0]) and torch.equal(cu_seqlens, expected[1]) and longest == expected[2]


def test_bf16_weights_on_long_inputs_match_the_fp32_model(st_reference, code_pairs):
    """A model whose weights are bf16 (as transformers 5 loads bf16 checkpoints), packed encode of long inputs,
    against the same model in fp32 through sentence-transformers: equal within bf16's tolerance."""
    from embedkit.models.packed.selfcheck import HALF_TOLERANCE
    from embedkit.models.packed.texts import encode_packed

    long_texts = [" ".join(p.code for p in code_pairs[i:i + 40]) for i in range(0, 200, 40)]
    fp32 = copy.deepcopy(st_reference)
    fp32.max_seq_length = 2048
    assert int(fp32.tokenize(long_texts)["attention_mask"].sum(1).min()) > 1000  # long: mean over 1000+ tokens
    expected = fp32.encode(long_texts, batch_size=8)
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    got = encode_packed(bf16, long_texts, strict=True)
    assert got.dtype == np.float32
    error = np.linalg.norm(got - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert error.max() < HALF_TOLERANCE
