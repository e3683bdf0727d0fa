"""Blocked local attention (the padded kernel's form for sliding-window layers): the same result as the padded,
masked attention, for every mix of lengths, and the whole packed forward equal to HF's padded one through it."""

from __future__ import annotations

import pytest
import torch

from embedkit.models.packed.kernels import KERNELS, attend
from embedkit.models.packed.layout import PackedLayout, cu_seqlens_from_lengths, local_block_size, local_key_span

pytestmark = pytest.mark.packed

# Kernels with a local form (today the padded one); every test runs for each.
LOCAL_KERNELS = [kernel for kernel in KERNELS.values() if kernel.local is not None and not kernel.needs_cuda]

LENGTHS = {
    "shorter than a block": [3],
    "one token": [1],
    "not a multiple of the block": [37, 100, 9],
    "exact blocks": [32, 64, 96],
    "many mixed lengths": None,  # drawn below
}


def _lengths(case: str) -> list[int]:
    if LENGTHS[case] is not None:
        return LENGTHS[case]
    generator = torch.Generator().manual_seed(1)
    return torch.randint(1, 300, (40,), generator=generator).tolist() + [1, 2, 299]


def _qkv(total: int, heads: int = 3, dim: int = 16, seed: int = 0) -> list[torch.Tensor]:
    """Peaked attention (scaled queries), so that a key let in or left out by mistake moves the outputs."""
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(total, heads, dim, generator=generator) for _ in range(3))  # (tokens, heads, dim)
    return [q * 3, k, v]


def test_local_kernels_exist():
    assert LOCAL_KERNELS, "no attention kernel has a local form"


@pytest.mark.parametrize("kernel", LOCAL_KERNELS, ids=lambda k: k.name)
@pytest.mark.parametrize("window", [4, 64, 5])
@pytest.mark.parametrize("case", list(LENGTHS))
def test_blocked_local_attention_equals_the_padded_masked_one(kernel, window, case):
    lengths = _lengths(case)
    cu_seqlens, longest = cu_seqlens_from_lengths(torch.tensor(lengths))
    q, k, v = _qkv(sum(lengths))
    layout = PackedLayout(cu_seqlens, longest, q.shape[0])
    scale = q.shape[-1] ** -0.5
    expected = kernel._attend(q, k, v, cu_seqlens, longest, window, 0.0, scale, layout)
    got = kernel.local(q, k, v, cu_seqlens, longest, window, 0.0, scale, layout)
    assert got.shape == expected.shape == q.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # and built without the shared layout (what attend() does when given none)
    torch.testing.assert_close(kernel.local(q, k, v, cu_seqlens, longest, window, 0.0, scale, None), expected,
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel", LOCAL_KERNELS, ids=lambda k: k.name)
def test_gradients_through_blocked_local_attention_equal_the_padded_ones(kernel):
    lengths = [70, 5, 33]
    cu_seqlens, longest = cu_seqlens_from_lengths(torch.tensor(lengths))
    grads = []
    for attention in (kernel._attend, kernel.local):
        q, k, v = (t.requires_grad_() for t in _qkv(sum(lengths)))
        out = attention(q, k, v, cu_seqlens, longest, 4, 0.0, None, None)  # (tokens, heads, dim)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([q.grad, k.grad, v.grad])
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel", LOCAL_KERNELS, ids=lambda k: k.name)
def test_attend_takes_the_local_form_only_for_a_window_narrower_than_the_sequences(kernel):
    window = 4
    span = local_key_span(window)
    assert span == local_block_size(window) + 2 * window
    assert kernel.attention_for(window, span + 1) is kernel.local
    assert kernel.attention_for(window, span) is kernel._attend  # short sequences: padding is cheaper
    assert kernel.attention_for(None, 10 * span) is kernel._attend  # global layers are untouched
    # equal lengths pad without copying: the local form only from twice the span
    assert kernel.attention_for(window, 2 * span, uniform=True) is kernel._attend
    assert kernel.attention_for(window, 2 * span + 1, uniform=True) is kernel.local
    # attend() goes through the same choice: a long sequence with a window gives the padded kernel's result
    lengths = [3 * span, 2]
    cu_seqlens, longest = cu_seqlens_from_lengths(torch.tensor(lengths))
    q, k, v = _qkv(sum(lengths))
    expected = kernel._attend(q, k, v, cu_seqlens, longest, window, 0.0, None, None)
    torch.testing.assert_close(attend(q, k, v, cu_seqlens, longest, window=window, kernel=kernel), expected,
                               atol=1e-5, rtol=1e-5)
    full = attend(q, k, v, cu_seqlens, longest, kernel=kernel)  # window None: the padded kernel itself
    assert torch.equal(full, kernel._attend(q, k, v, cu_seqlens, longest, None, 0.0, None, None))


def test_local_block_sizes():
    assert [local_block_size(w) for w in (1, 4, 8, 20, 64, 256)] == [8, 8, 8, 20, 32, 32]


@pytest.fixture(scope="module")
def local_modernbert(code_pairs, tmp_path_factory):
    """A tiny ModernBERT with a 16-token local window (half-window 8) and peaked attention, so that sequences of
    a few dozen tokens span many blocks."""
    from transformers import ModernBertModel

    from embedkit.models.tiny import build_tiny_modernbert

    path = build_tiny_modernbert(tmp_path_factory.mktemp("local-modernbert"),
                                 [p.code for p in code_pairs[:50]], local_attention=16, vocab_size=500)
    model = ModernBertModel.from_pretrained(path).eval()
    with torch.no_grad():
        for layer in model.layers:
            layer.attn.Wqkv.weight.mul_(10.0)
    return model


def test_packed_forward_through_local_blocks_equals_hf_padded(local_modernbert, monkeypatch):
    """Sequences shorter than a block, of many blocks and of no whole number of blocks, packed together: the
    packed forward (its local layers on blocks) gives HF's padded last_hidden_state."""
    from embedkit.models.packed.forward import run_packed_forward
    from embedkit.models.packed.layout import unpad

    model = local_modernbert
    window = model.config.sliding_window
    assert window == 8 and any(layer.attention_type == "sliding_attention" for layer in model.layers)
    built = []
    real = PackedLayout.local_blocks
    monkeypatch.setattr(PackedLayout, "local_blocks", lambda self, *a: built.append(a) or real(self, *a))
    lengths = [100, 3, 37, 64, 1, 90]
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (len(lengths), max(lengths)), generator=generator)
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()  # (batch, longest)
    indices, cu_seqlens, longest = unpad(mask)
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state.flatten(0, 1)[indices]
        got = run_packed_forward(model, ids.flatten()[indices], cu_seqlens, longest, kernel=LOCAL_KERNELS[0])
    assert built, "the local layers did not run on blocks"
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
