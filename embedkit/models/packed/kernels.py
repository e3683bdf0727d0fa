"""The attention kernels of the packed forward: one registry, each kernel an object with the properties its
callers ask about (never its name).

:func:`attend` is bidirectional attention inside each packed sequence, with an optional symmetric sliding
window. The kernels, in the order ``"auto"`` tries them:

- ``flash_attn``: ``flash_attn.flash_attn_varlen_func`` when the package is importable (CUDA sm80+);
- ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` (PyTorch's flash kernel; CUDA sm80+);
- ``sdpa``: everywhere else (CPU, older GPUs). Pads q/k/v to ``(n, max_seqlen)`` for the attention product
  only and masks keys outside the sequence or the window, so it has the same semantics as the others. On a
  sliding-window layer whose sequences are longer than the keys a block of queries needs, it runs blocked
  local attention instead (:class:`~embedkit.models.packed.layout.LocalBlocks`): the same result at a cost
  linear in the sequence length (ModernBERT's local layers are two of every three).

The flash kernels take fp16/bf16; fp32 inputs on CUDA are cast to bf16 for the attention product only.
Window semantics match HF ModernBERT: a query at position ``i`` sees keys ``j`` of its own sequence with
``|i - j| <= window`` (``window = local_attention // 2``), i.e. flash ``window_size=(window, window)``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from embedkit.models.packed.layout import PackedLayout, local_key_span

logger = logging.getLogger(__name__)

# What a caller may ask for: a kernel by name, or "auto" (the first usable one, see KERNELS).
KernelChoice = Literal["auto", "flash_attn", "varlen", "sdpa"]
AUTO = "auto"

FP32_ON_CUDA = "fp32 inputs on CUDA: packed attention runs in bf16 (projections and MLP stay fp32)"
SDPA_ON_CUDA = "packed attention falls back to padded SDPA on this GPU (flash kernels need sm80+)"

# (q, k, v, cu_seqlens, max_seqlen, window, dropout_p, scale, layout) -> (total_tokens, heads, head_dim)
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, "int | None", float, "float | None",
                   "PackedLayout | None"], torch.Tensor]


@dataclass(frozen=True, eq=False)
class AttentionKernel:
    """One attention kernel and what its callers need to know about it.

    Attributes:
        name: its name in :data:`KernelChoice`.
        needs_cuda: runs on CUDA (sm80+) only; ``auto`` on a GPU that it cannot use falls back (with a warning).
        buckets_lengths: needs only an upper bound on the longest sequence, so batches report
            :func:`~embedkit.models.packed.layout.bucket_seqlen` of it (no device sync, few compiled shapes);
            otherwise the attention is padded to the exact longest sequence.
        half_precision: takes fp16/bf16 only; fp32 inputs run the attention product in bf16.
        has_dropout: applies attention dropout in training.
        local: the kernel's cheaper form for a sliding window narrower than the sequences (same arguments and
            result), taken when :meth:`attention_for` says it pays; ``None``: the kernel handles windows itself.
    """

    name: str
    needs_cuda: bool
    buckets_lengths: bool
    half_precision: bool
    has_dropout: bool
    available: Callable[[], bool]
    _attend: Attend
    local: Attend | None = None

    def usable(self, device: torch.device, dtype: torch.dtype) -> bool:
        """Whether ``auto`` may pick this kernel for inputs of ``dtype`` on ``device``."""
        if not self.needs_cuda:
            return True
        if device.type != "cuda" or dtype not in (torch.float16, torch.bfloat16, torch.float32):
            return False
        return _flash_capable(device.index if device.index is not None else torch.cuda.current_device()) \
            and self.available()

    def attention_for(self, window: int | None, max_seqlen: int, uniform: bool = False) -> Attend:
        """The attention this kernel runs for a layer with ``window`` on sequences of at most ``max_seqlen``: its
        :attr:`local` form when there is one and the longest sequence exceeds the keys a block of it reads
        (twice that when all sequences are equally long, ``uniform``: padding them then copies nothing, which
        measured faster on CPU for 16 x 256 tokens with ModernBERT's window, and slower for 8 x 512).

        Inside ``torch.compile`` the local form is taken for every window, whatever the lengths: one compiled
        graph then serves every batch (a choice by ``max_seqlen`` would recompile when a batch crosses it)."""
        if self.local is None or window is None:
            return self._attend
        if torch.compiler.is_compiling() or max_seqlen > local_key_span(window) * (2 if uniform else 1):
            return self.local
        return self._attend

    def __repr__(self) -> str:
        return f"AttentionKernel({self.name})"


@functools.cache
def flash_attn_available() -> bool:
    """True when ``flash_attn`` imports (a wheel built against another torch fails at import, not at find_spec)."""
    try:
        from flash_attn import flash_attn_varlen_func  # noqa: F401
    except Exception:  # ImportError, or OSError/RuntimeError from a mismatched binary
        return False
    return True


@functools.cache
def torch_varlen_available() -> bool:
    return importlib.util.find_spec("torch.nn.attention.varlen") is not None


@functools.cache
def _flash_capable(device_index: int) -> bool:
    """Flash kernels (flash-attn 2 and torch's) need Ampere or newer."""
    return torch.cuda.get_device_capability(device_index) >= (8, 0)


@functools.cache
def _warn_once(message: str) -> None:
    logger.warning(message)


def _window_size(window: int | None) -> tuple[int, int]:
    return (window, window) if window is not None else (-1, -1)


def _flash_attn(q, k, v, cu_seqlens, max_seqlen, window, dropout_p, scale, layout) -> torch.Tensor:
    from flash_attn import flash_attn_varlen_func

    return flash_attn_varlen_func(q, k, v.contiguous(), cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
                                  dropout_p=dropout_p, softmax_scale=scale, causal=False,
                                  window_size=_window_size(window))


def _torch_varlen(q, k, v, cu_seqlens, max_seqlen, window, dropout_p, scale, layout) -> torch.Tensor:
    from torch.nn.attention.varlen import varlen_attn

    if dropout_p > 0:
        _warn_once("torch varlen_attn has no attention dropout; running attention without it")
    return varlen_attn(q, k, v.contiguous(), cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, scale=scale,
                       window_size=_window_size(window))


def _sdpa(q, k, v, cu_seqlens, max_seqlen, window, dropout_p, scale, layout) -> torch.Tensor:
    if layout is None:
        layout = PackedLayout(cu_seqlens, max_seqlen, q.shape[0])
    out = F.scaled_dot_product_attention(layout.to_padded(q), layout.to_padded(k), layout.to_padded(v),
                                         attn_mask=layout.mask(window, q.dtype), dropout_p=dropout_p,
                                         scale=scale)  # (n, H, L, D)
    return layout.from_padded(out)  # (total_tokens, H, D)


def _sdpa_local(q, k, v, cu_seqlens, max_seqlen, window, dropout_p, scale, layout) -> torch.Tensor:
    """Blocked sliding-window attention: :func:`_sdpa`'s result for ``window`` (not ``None``) in
    ``O(tokens * (block + 2 * window))``."""
    if layout is None:
        layout = PackedLayout(cu_seqlens, max_seqlen, q.shape[0])
    blocks = layout.local_blocks(window, q.dtype)
    out = F.scaled_dot_product_attention(blocks.queries(q), blocks.keys(k), blocks.keys(v), attn_mask=blocks.mask,
                                         dropout_p=dropout_p, scale=scale)  # (blocks, H, B, D)
    return blocks.from_blocks(out)  # (total_tokens, H, D)


# The registry, in the order "auto" tries the kernels: the last one runs everywhere.
KERNELS: dict[str, AttentionKernel] = {k.name: k for k in (
    AttentionKernel("flash_attn", needs_cuda=True, buckets_lengths=True, half_precision=True, has_dropout=True,
                    available=flash_attn_available, _attend=_flash_attn),
    AttentionKernel("varlen", needs_cuda=True, buckets_lengths=True, half_precision=True, has_dropout=False,
                    available=torch_varlen_available, _attend=_torch_varlen),
    AttentionKernel("sdpa", needs_cuda=False, buckets_lengths=False, half_precision=False, has_dropout=True,
                    available=lambda: True, _attend=_sdpa, local=_sdpa_local),
)}


def kernel_named(name: str) -> AttentionKernel:
    """The registered kernel called ``name``.

    Raises:
        ValueError: for a name that is not registered.
    """
    if name not in KERNELS:
        raise ValueError(f"unknown attention kernel {name!r}; one of {AUTO}, {', '.join(KERNELS)}")
    return KERNELS[name]


def pick_kernel(device: torch.device, dtype: torch.dtype, choice: KernelChoice | AttentionKernel = AUTO,
                ) -> AttentionKernel:
    """The kernel a call with inputs of ``dtype`` on ``device`` uses: ``choice`` itself, or for ``"auto"`` the
    first registered kernel usable there (fp32 on CUDA also takes the flash kernels, in bf16)."""
    if isinstance(choice, AttentionKernel):
        return choice
    if choice != AUTO:
        return kernel_named(choice)
    return next(kernel for kernel in KERNELS.values() if kernel.usable(device, dtype))


def resolve_kernel(device: torch.device, dtype: torch.dtype, choice: KernelChoice | AttentionKernel = AUTO,
                   ) -> AttentionKernel:
    """:func:`pick_kernel` under the caller's autocast, with its warnings logged here, before (and outside) any
    compiled code; pass the result on so that nothing is decided inside the forward (a kernel passed in is
    returned as it is)."""
    if isinstance(choice, AttentionKernel):
        return choice
    if torch.is_autocast_enabled(device.type):
        dtype = torch.get_autocast_dtype(device.type)
    chosen = pick_kernel(device, dtype, choice)
    if device.type == "cuda" and chosen.half_precision and dtype == torch.float32:
        _warn_once(FP32_ON_CUDA)
    if device.type == "cuda" and not chosen.needs_cuda and choice == AUTO:
        _warn_once(SDPA_ON_CUDA)
    return chosen


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int,
           window: int | None = None, dropout_p: float = 0.0, scale: float | None = None,
           kernel: KernelChoice | AttentionKernel = AUTO, layout: PackedLayout | None = None) -> torch.Tensor:
    """Attention inside each packed sequence.

    Args:
        q, k, v: ``(total_tokens, heads, head_dim)``.
        cu_seqlens: ``(n + 1,)`` int32 on the same device.
        max_seqlen: longest sequence (an upper bound for a kernel that ``buckets_lengths``).
        window: half-window (keys with ``|i - j| <= window``), ``None`` for full attention.
        kernel: a resolved kernel (:func:`resolve_kernel`), a kernel's name, or ``"auto"``.
        layout: cached padding layout for a padded kernel (built here when omitted).

    Returns:
        ``(total_tokens, heads, head_dim)``.
    """
    chosen = pick_kernel(q.device, q.dtype, kernel)
    uniform = layout is not None and layout.uniform
    if chosen.half_precision and q.dtype == torch.float32:
        # The kernels take fp16/bf16 only; an fp32 model (e.g. SentenceTransformer.encode without autocast)
        # runs just the attention product in bf16 rather than losing the kernels to the padded fallback.
        if not torch.compiler.is_compiling():
            _warn_once(FP32_ON_CUDA)
        out = chosen.attention_for(window, max_seqlen, uniform)(q.bfloat16(), k.bfloat16(), v.bfloat16(),
                                                                cu_seqlens, max_seqlen, window, dropout_p, scale,
                                                                layout)
        return out.float()
    if q.is_cuda and not chosen.needs_cuda and kernel == AUTO and not torch.compiler.is_compiling():
        _warn_once(SDPA_ON_CUDA)
    return chosen.attention_for(window, max_seqlen, uniform)(q, k, v, cu_seqlens, max_seqlen, window, dropout_p,
                                                             scale, layout)
