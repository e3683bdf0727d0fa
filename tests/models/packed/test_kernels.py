"""The attention kernel registry: kernels are objects whose properties callers ask, "auto" picks the first
usable one, and every kernel computes the same attention."""

from __future__ import annotations

import pytest
import torch

from embedkit.models.packed.kernels import AUTO, KERNELS, AttentionKernel, attend, kernel_named, pick_kernel
from embedkit.models.packed.layout import cu_seqlens_from_lengths

pytestmark = pytest.mark.packed


def test_the_registry_describes_each_kernel():
    assert list(KERNELS) == ["flash_attn", "varlen", "sdpa"]  # the order auto tries them
    assert all(isinstance(k, AttentionKernel) and k.name == name for name, k in KERNELS.items())
    padded = [k for k in KERNELS.values() if not k.needs_cuda]
    assert len(padded) == 1 and padded == [list(KERNELS.values())[-1]]  # the last one runs everywhere
    for kernel in KERNELS.values():  # only the varlen kernels take an upper bound and half precision
        assert kernel.buckets_lengths == kernel.needs_cuda == kernel.half_precision


def test_auto_on_cpu_is_the_kernel_that_runs_everywhere():
    for dtype in (torch.float32, torch.bfloat16):
        chosen = pick_kernel(torch.device("cpu"), dtype, AUTO)
        assert not chosen.needs_cuda and chosen.usable(torch.device("cpu"), dtype)
    assert not any(k.usable(torch.device("cpu"), torch.float32) for k in KERNELS.values() if k.needs_cuda)


def test_a_kernel_asked_for_by_name_or_object():
    kernel = KERNELS["sdpa"]
    assert pick_kernel(torch.device("cpu"), torch.float32, "sdpa") is kernel
    assert pick_kernel(torch.device("cpu"), torch.float32, kernel) is kernel
    with pytest.raises(ValueError, match="unknown attention kernel 'flash'; one of auto, flash_attn, varlen, sdpa"):
        kernel_named("flash")


def test_attention_stays_inside_each_sequence_and_window():
    """Two sequences attended at once equal each attended alone, with and without a window."""
    torch.manual_seed(0)
    lengths = torch.tensor([7, 3])
    cu_seqlens, longest = cu_seqlens_from_lengths(lengths)
    q, k, v = (torch.randn(10, 2, 8) for _ in range(3))  # (tokens, heads, head_dim)
    for window in (None, 2):
        together = attend(q, k, v, cu_seqlens, longest, window=window)
        for start, end in ((0, 7), (7, 10)):
            alone = attend(q[start:end], k[start:end], v[start:end], cu_seqlens_from_lengths(
                torch.tensor([end - start]))[0], end - start, window=window, kernel="sdpa")
            torch.testing.assert_close(together[start:end], alone)
    # the window matters: a narrower one changes the long sequence's outputs
    assert not torch.allclose(attend(q, k, v, cu_seqlens, longest, window=1)[:7],
                              attend(q, k, v, cu_seqlens, longest)[:7])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="hardware: needs a CUDA device")
def test_every_usable_kernel_computes_the_same_attention_on_cuda():
    torch.manual_seed(0)
    device = torch.device("cuda")
    cu_seqlens, longest = cu_seqlens_from_lengths(torch.tensor([300, 17, 129]))
    cu_seqlens = cu_seqlens.to(device)
    q, k, v = (torch.randn(446, 4, 64, device=device, dtype=torch.bfloat16) for _ in range(3))
    reference = attend(q, k, v, cu_seqlens, longest, window=64, kernel="sdpa").float()
    usable = [kern for kern in KERNELS.values() if kern.usable(device, torch.bfloat16)]
    assert usable[-1] is KERNELS["sdpa"]
    for kernel in usable:
        bound = 512 if kernel.buckets_lengths else longest  # an upper bound is enough for these
        out = attend(q, k, v, cu_seqlens, bound, window=64, kernel=kernel).float()
        torch.testing.assert_close(out, reference, atol=2e-2, rtol=2e-2)
