"""Packed batch layout: padded batch <-> packed tokens, cu_seqlens, token-budget batches, per-sequence pooling.

A packed batch holds ``n`` sequences back to back in one ``(total_tokens, ...)`` tensor, described by
``cu_seqlens`` (int32, ``(n + 1,)``, ``cu_seqlens[i]:cu_seqlens[i + 1]`` is sequence ``i``) and
``max_seqlen`` (the longest sequence, a Python int), the layout flash-attention's varlen kernels take.
:class:`PackedLayout` is the padded view of one packed batch that the padded attention kernel needs
(:mod:`embedkit.models.packed.kernels` chooses the kernel), and :class:`LocalBlocks` the blocked view that
the padded kernel's sliding-window attention takes instead, so that its cost grows with the window, not the
longest sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Pooling = Literal["mean", "cls"]  # how a packed sequence becomes one vector (pool_packed)


def cu_seqlens_from_lengths(lengths: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(cu_seqlens, max_seqlen)`` for sequences of the given lengths.

    >>> cu_seqlens_from_lengths(torch.tensor([3, 1, 2]))
    (tensor([0, 3, 4, 6], dtype=torch.int32), 3)
    """
    cu_seqlens = F.pad(torch.cumsum(lengths, dim=0, dtype=torch.int32), (1, 0))  # (n + 1,)
    return cu_seqlens, int(lengths.max()) if lengths.numel() else 0


def unpad(attention_mask: torch.Tensor, max_seqlen: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Where the real tokens of a padded batch are, computed where the mask lives.

    On a GPU ``torch.nonzero`` waits for the device (its output size is data-dependent); callers that know
    the lengths on the host use :func:`unpad_from_lengths` instead.

    Args:
        attention_mask: ``(batch, seq_len)``, 1 for real tokens. Left or right padding both work,
            as long as each row's real tokens are contiguous.
        max_seqlen: an upper bound on the longest row to report instead of computing it (which, on a GPU,
            waits for the device).

    Returns:
        ``indices`` (``(total_tokens,)``, positions in the flattened ``(batch * seq_len,)`` batch),
        ``cu_seqlens`` (``(batch + 1,)`` int32) and ``max_seqlen``.

    >>> unpad(torch.tensor([[1, 1, 0], [1, 1, 1]]))
    (tensor([0, 1, 3, 4, 5]), tensor([0, 2, 5], dtype=torch.int32), 3)
    """
    mask = attention_mask.bool()
    indices = torch.nonzero(mask.flatten(), as_tuple=False).flatten()  # (total_tokens,)
    lengths = mask.sum(dim=1)  # (batch,)
    if max_seqlen is not None:
        return indices, F.pad(torch.cumsum(lengths, dim=0, dtype=torch.int32), (1, 0)), max_seqlen
    cu_seqlens, longest = cu_seqlens_from_lengths(lengths)
    return indices, cu_seqlens, longest


def unpad_from_lengths(starts: np.ndarray, lengths: np.ndarray, seq_len: int,
                       ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """:func:`unpad` computed on the host from each row's first real position and length (no device sync).

    >>> unpad_from_lengths(np.array([0, 0]), np.array([2, 3]), 3)
    (tensor([0, 1, 3, 4, 5]), tensor([0, 2, 5], dtype=torch.int32), 3)
    """
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    cu = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=cu[1:])
    row_offset = np.arange(len(lengths), dtype=np.int64) * seq_len + starts  # (batch,)
    # each token's flat position: its row's offset plus its rank inside the row
    indices = np.repeat(row_offset - cu[:-1], lengths) + np.arange(cu[-1], dtype=np.int64)  # (total_tokens,)
    return (torch.from_numpy(indices), torch.from_numpy(cu.astype(np.int32)),
            int(lengths.max()) if len(lengths) else 0)


def bucket_seqlen(max_seqlen: int, minimum: int = 64) -> int:
    """Round ``max_seqlen`` up to a power of two (at least ``minimum``): the flash kernels only need an upper
    bound, and a few buckets keep a compiled graph from specialising on every batch's longest sequence.

    >>> [bucket_seqlen(n) for n in (3, 64, 65, 300, 4097)]
    [64, 64, 128, 512, 8192]
    """
    bucket = minimum
    while bucket < max_seqlen:
        bucket *= 2
    return bucket


def repad(packed: torch.Tensor, indices: torch.Tensor, batch: int, seq_len: int) -> torch.Tensor:
    """Scatter packed rows back into a zero-padded ``(batch, seq_len, ...)`` tensor (differentiable).

    >>> repad(torch.tensor([[1.], [2.], [3.]]), torch.tensor([0, 2, 3]), 2, 2).squeeze(-1)
    tensor([[1., 0.],
            [2., 3.]])
    """
    out = packed.new_zeros((batch * seq_len, *packed.shape[1:]))
    out = out.index_copy(0, indices, packed)  # (batch * seq_len, ...)
    return out.view(batch, seq_len, *packed.shape[1:])  # (batch, seq_len, ...)


def sequence_ids(cu_seqlens: torch.Tensor, total_tokens: int) -> torch.Tensor:
    """The sequence index of every packed token, ``(total_tokens,)`` int64.

    >>> sequence_ids(torch.tensor([0, 2, 5], dtype=torch.int32), 5)
    tensor([0, 0, 1, 1, 1])
    """
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=cu_seqlens.device), lengths,
                                   output_size=total_tokens)


def positions(cu_seqlens: torch.Tensor, total_tokens: int) -> torch.Tensor:
    """Position of every packed token inside its own sequence (restarts at 0), ``(total_tokens,)`` int64.

    >>> positions(torch.tensor([0, 2, 5], dtype=torch.int32), 5)
    tensor([0, 1, 0, 1, 2])
    """
    starts = cu_seqlens[:-1].long()[sequence_ids(cu_seqlens, total_tokens)]  # (total_tokens,)
    return torch.arange(total_tokens, device=cu_seqlens.device) - starts


def pack_by_token_budget(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Group sequence indices, longest first, into batches of at most ``max_tokens`` real tokens.

    A sequence longer than the budget gets a batch of its own. Every index appears exactly once.

    >>> pack_by_token_budget([5, 2, 9, 3], max_tokens=10)
    [[2], [0, 3, 1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + lengths[i] > max_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        batches.append(current)
    return batches


def pool_packed(hidden: torch.Tensor, cu_seqlens: torch.Tensor, mode: Pooling) -> torch.Tensor:
    """One vector per packed sequence, in float32: the mean of its tokens or its first token.

    The sum is accumulated in float32 whatever ``hidden``'s dtype: a bf16 accumulator stops growing once the
    sum is large (CUDA's ``index_add_`` rounds after every atomic add), so long documents would get wrong
    means, and an fp16 one overflows to inf. ``sentence-transformers`` accumulates in float32 too.

    Args:
        hidden: ``(total_tokens, dim)``.
        cu_seqlens: ``(n + 1,)``.

    Returns:
        ``(n, dim)`` float32.

    >>> pool_packed(torch.tensor([[1.], [3.], [5.]]), torch.tensor([0, 2, 3], dtype=torch.int32), "mean")
    tensor([[2.],
            [5.]])
    """
    if mode == "cls":
        return hidden[cu_seqlens[:-1].long()].float()  # (n, dim)
    if mode != "mean":
        raise ValueError(f"pooling must be 'mean' or 'cls', got {mode!r}")
    n = cu_seqlens.numel() - 1
    seq = sequence_ids(cu_seqlens, hidden.shape[0])
    sums = torch.zeros((n, hidden.shape[1]), dtype=torch.float32, device=hidden.device)
    sums.index_add_(0, seq, hidden.float())  # (n, dim)
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).clamp(min=1).to(torch.float32)  # (n,)
    return sums / lengths[:, None]


class PackedLayout:
    """What the SDPA fallback needs to pad a packed batch, computed once per forward and shared by all layers."""

    def __init__(self, cu_seqlens: torch.Tensor, max_seqlen: int, total_tokens: int):
        self.cu_seqlens, self.max_seqlen = cu_seqlens, max_seqlen
        self.n = cu_seqlens.numel() - 1
        self._flat: torch.Tensor | None = None
        self._masks: dict[tuple[int | None, torch.dtype], torch.Tensor] = {}
        self._blocks: dict[tuple[int, torch.dtype], LocalBlocks] = {}
        self.total_tokens = total_tokens
        self.uniform = total_tokens == self.n * max_seqlen  # every sequence as long as the longest: no padding

    @property
    def flat_index(self) -> torch.Tensor:
        """Where each packed token lands in the flattened ``(n * max_seqlen,)`` padded batch."""
        if self._flat is None:
            seq = sequence_ids(self.cu_seqlens, self.total_tokens)
            self._flat = seq * self.max_seqlen + positions(self.cu_seqlens, self.total_tokens)  # (total_tokens,)
        return self._flat

    def mask(self, window: int | None, dtype: torch.dtype) -> torch.Tensor | None:
        """Additive ``(n, 1, L, L)`` mask: 0 where query ``i`` may attend key ``j``, -inf elsewhere.

        ``None`` when nothing is masked (equal lengths and no window narrower than them), so SDPA may take
        its fused kernels. Float rather than boolean so SDPA does not convert it again in every layer.
        """
        if self.uniform and (window is None or window >= self.max_seqlen - 1):
            return None
        if (window, dtype) not in self._masks:
            device, L = self.cu_seqlens.device, self.max_seqlen
            lengths = (self.cu_seqlens[1:] - self.cu_seqlens[:-1]).long()  # (n,)
            pos = torch.arange(L, device=device)
            valid = pos[None, :] < lengths[:, None]  # (n, L)
            allowed = valid[:, None, :].expand(self.n, L, L)  # (n, L_q, L_k): keys of the sequence
            if window is not None:
                allowed = allowed & ((pos[:, None] - pos[None, :]).abs() <= window)[None]
            # Padding queries see everything, so no softmax row is empty (no NaNs in backward); dropped later.
            allowed = allowed | ~valid[:, :, None]
            additive = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, float("-inf"))
            self._masks[(window, dtype)] = additive[:, None]  # (n, 1, L, L)
        return self._masks[(window, dtype)]

    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        """``(total_tokens, H, D)`` -> ``(n, H, L, D)``, zeros at padding; a view when lengths are equal."""
        if not self.uniform:
            x = x.new_zeros((self.n * self.max_seqlen, *x.shape[1:])).index_copy(0, self.flat_index, x)
        return x.view(self.n, self.max_seqlen, *x.shape[1:]).transpose(1, 2)

    def from_padded(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, H, L, D)`` -> ``(total_tokens, H, D)``, padding positions dropped."""
        heads, dim = x.shape[1], x.shape[3]
        x = x.transpose(1, 2).reshape(self.n * self.max_seqlen, heads, dim)
        return x if self.uniform else x[self.flat_index]

    def local_blocks(self, window: int, dtype: torch.dtype) -> LocalBlocks:
        """The :class:`LocalBlocks` of this batch for ``window``, built once and shared by all local layers."""
        if (window, dtype) not in self._blocks:
            self._blocks[(window, dtype)] = LocalBlocks(self.cu_seqlens, self.total_tokens, window, dtype)
        return self._blocks[(window, dtype)]


def local_block_size(window: int) -> int:
    """Queries per block of :class:`LocalBlocks`: ``window`` clamped to 8..32. Each block reads
    ``block + 2 * window`` keys, so smaller blocks do less wasted work and larger ones make fewer, larger
    products; 32 measured fastest for ModernBERT's ``window = 64`` on CPU (64 and 128: slower)."""
    return min(32, max(8, window))


def local_key_span(window: int) -> int:
    """Keys each block of :class:`LocalBlocks` attends to; blocked attention pays when sequences are longer."""
    return local_block_size(window) + 2 * window


class LocalBlocks:
    """The packed token stream cut into blocks of ``B`` consecutive tokens, each attending to the
    ``B + 2 * window`` tokens around it: sliding-window attention inside each sequence as one batched attention
    over ``(blocks, B)`` queries and ``(blocks, B + 2 * window)`` keys, exact (keys of another sequence or beyond
    the window are masked), at a cost of ``O(tokens * (B + 2 * window))`` instead of ``O(tokens * longest)``.

    Blocks run across sequence boundaries (the mask keeps sequences apart), so nothing is gathered or scattered:
    the queries are the packed tokens themselves (zero-padded to whole blocks), the keys are overlapping views
    of one zero-padded copy, and the output is the packed tokens' rows. Everything derives from tensor shapes
    and ``cu_seqlens`` on its device (no host sync).

    >>> blocks = LocalBlocks(torch.tensor([0, 3, 5], dtype=torch.int32), 5, window=1, dtype=torch.float32)
    >>> (blocks.block, blocks.span, blocks.num_blocks)
    (8, 10, 1)
    >>> (blocks.mask[0, 0, :6, :8] == 0).int()  # query token i may see key token i - 1 + s (s = column)
    tensor([[0, 1, 1, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 1, 1, 1]], dtype=torch.int32)
    """

    def __init__(self, cu_seqlens: torch.Tensor, total_tokens: int, window: int, dtype: torch.dtype):
        device = cu_seqlens.device
        self.window, self.block = window, local_block_size(window)
        self.span = self.block + 2 * window
        self.total_tokens = total_tokens
        self.num_blocks = (total_tokens + self.block - 1) // self.block
        self.tail = self.num_blocks * self.block - total_tokens  # padding rows after the last token
        seq = sequence_ids(cu_seqlens, total_tokens)  # (total_tokens,)
        query_seq = F.pad(seq, (0, self.tail), value=-1).view(self.num_blocks, self.block)  # (blocks, B)
        key_seq = F.pad(seq, (window, window + self.tail), value=-1).unfold(0, self.span, self.block)  # (blocks, span)
        # query r of a block and key s of the same block are tokens r + window - s apart, whatever the block
        offset = torch.arange(self.block, device=device)[:, None] + window - torch.arange(self.span, device=device)
        near = offset.abs() <= window  # (B, span)
        allowed = near & (query_seq[:, :, None] == key_seq[:, None, :])  # (blocks, B, span)
        # Padding queries see everything, so no softmax row is empty (no NaNs in backward); dropped later.
        allowed = allowed | (query_seq < 0)[:, :, None]
        self.mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(
            ~allowed, float("-inf"))[:, None]  # (blocks, 1, B, span)

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """``(total_tokens, H, D)`` -> ``(blocks, H, B, D)`` (a view when the tokens fill whole blocks)."""
        if torch.compiler.is_compiling() or self.tail:  # (compiled: no branch on the token count, one graph)
            x = F.pad(x, (0, 0, 0, 0, 0, self.tail))  # (blocks * B, H, D)
        return x.view(self.num_blocks, self.block, *x.shape[1:]).transpose(1, 2)

    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """``(total_tokens, H, D)`` -> ``(blocks, H, span, D)``: each block's keys, overlapping views of one copy
        padded with ``window`` zero rows before the first token and after the last block."""
        x = F.pad(x, (0, 0, 0, 0, self.window, self.window + self.tail))  # (blocks * B + 2 * window, H, D)
        return x.unfold(0, self.span, self.block).transpose(-1, -2)  # (blocks, H, span, D)

    def from_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """``(blocks, H, B, D)`` -> ``(total_tokens, H, D)``, padding dropped."""
        return x.transpose(1, 2).reshape(self.num_blocks * self.block, x.shape[1], x.shape[3])[:self.total_tokens]
