"""Self-check of the packed ModernBERT forward against Hugging Face's, on first use.

The packed forward re-implements how ModernBERT's modules are wired (rotary positions, sliding window,
attention kernels, compiled graphs), and packed encoding re-implements how a library tokenises, pools and
projects. A wrong kernel, a new transformers or sentence-transformers release or an unusual checkpoint could
make either differ from the library without any test here noticing, and a user would get wrong embeddings
that look fine. So each is checked on first use, under the caller's autocast and in inference mode (the
mode encoding runs in, so a compiled forward is not traced twice):

- :func:`packed_path_ok`, once per model, device and dtype: a few fixed inputs, one longer than the local
  attention window, through both forwards; the hidden states are compared;
- :func:`embeddings_ok`, once per model, encoding settings, device and dtype: the final embeddings
  (pooled and projected, or ColBERT's token vectors) of a few of the caller's own texts, packed path vs the
  library's own ``encode``.

Either way:

- within tolerance: the packed path is used from then on;
- beyond it: one warning with the error, and the caller falls back to the library's path for the rest of
  the run; with ``strict`` (``packed: on``) the mismatch is an :class:`~embedkit.errors.EmbedkitError`.

Results are cached on the model object, so the checks cost a few small forwards per model, device and dtype.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from embedkit.errors import EmbedkitError

if TYPE_CHECKING:
    from transformers import ModernBertModel

logger = logging.getLogger(__name__)

_CACHE_ATTR = "_embedkit_packed_self_check"
_EMBEDDINGS_ATTR = "_embedkit_packed_embedding_check"
# Per-token relative error ||packed - hf|| / ||hf|| allowed. fp32 end to end agrees to ~1e-6; a bf16/fp16
# forward (or fp32 weights with bf16 attention kernels on CUDA) drifts by ~1e-2 over 22-28 layers.
FP32_TOLERANCE = 1e-3
HALF_TOLERANCE = 5e-2

PackedFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # (ids, cu_seqlens, max_seqlen) -> hidden


@dataclass(frozen=True)
class SelfCheck:
    ok: bool
    max_error: float
    tolerance: float
    device: str
    dtype: str


def check_lengths(model: ModernBertModel) -> list[int]:
    """Three sequences: one longer than the local window (so the window is exercised), a short and a tiny one."""
    config = model.config
    window = int(getattr(config, "local_attention", 128) or 128)
    longest = min(window + max(window // 2, 8), int(getattr(config, "max_position_embeddings", 8192)))
    return [longest, max(longest // 3, 2), 3]


def _compute_dtype(model: ModernBertModel, device: torch.device) -> torch.dtype:
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return next(model.parameters()).dtype


def tolerance_for(model: ModernBertModel, device: torch.device) -> float:
    dtype = _compute_dtype(model, device)
    return FP32_TOLERANCE if dtype == torch.float32 and device.type == "cpu" else HALF_TOLERANCE


def _relative_error(packed: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest per-token ``||packed - reference|| / ||reference||`` (``(tokens, hidden)`` each)."""
    diff = (packed.float() - reference.float()).norm(dim=-1)
    scale = reference.float().norm(dim=-1).clamp_min(1e-6)
    error = (diff / scale).max()
    return float("inf") if not torch.isfinite(error) else float(error)


def run_self_check(model: ModernBertModel, packed_fn: PackedFn) -> SelfCheck:
    """Compare ``packed_fn`` with ``model``'s own padded forward on :func:`check_lengths` random sequences."""
    from embedkit.models.packed.layout import cu_seqlens_from_lengths, unpad

    device = next(model.parameters()).device
    lengths = check_lengths(model)
    generator = torch.Generator().manual_seed(0)  # fixed inputs; the global RNG is left alone
    vocab = int(model.config.vocab_size)
    ids = torch.randint(0, vocab, (len(lengths), max(lengths)), generator=generator)  # (3, longest)
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()  # (3, longest)
    ids, mask = ids.to(device), mask.to(device)
    indices, _, _ = unpad(mask)
    cu_seqlens, max_seqlen = cu_seqlens_from_lengths(torch.tensor(lengths))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            reference = model(input_ids=ids, attention_mask=mask).last_hidden_state  # (3, longest, hidden)
            reference = reference.flatten(0, 1)[indices]  # (tokens, hidden)
            packed = packed_fn(ids.flatten()[indices], cu_seqlens.to(device), max_seqlen)  # (tokens, hidden)
            error = _relative_error(packed, reference)
    finally:
        model.train(was_training)
    tolerance = tolerance_for(model, device)
    return SelfCheck(ok=error <= tolerance, max_error=error, tolerance=tolerance, device=str(device),
                     dtype=str(_compute_dtype(model, device)).removeprefix("torch."))


def packed_path_ok(model: ModernBertModel, packed_fn: PackedFn, strict: bool = False) -> bool:
    """Whether the packed forward may be used for ``model`` on its current device and dtype (checked once).

    Raises:
        EmbedkitError: on a mismatch when ``strict``.
    """
    device = next(model.parameters()).device
    key = (str(device), str(_compute_dtype(model, device)))
    cache: dict[tuple[str, str], SelfCheck] = model.__dict__.setdefault(_CACHE_ATTR, {})
    result = cache.get(key)
    if result is None:
        try:
            result = run_self_check(model, packed_fn)
        except Exception as exc:  # a kernel that does not run here is a mismatch too
            if strict:
                raise EmbedkitError(f"packed: on, but the packed ModernBERT forward fails on {key[0]} "
                                    f"({type(exc).__name__}: {exc}); set packed to auto or off") from exc
            logger.warning("packed ModernBERT forward fails on %s (%s: %s); using the Hugging Face forward "
                           "for the rest of the run", key[0], type(exc).__name__, exc)
            result = SelfCheck(False, float("inf"), tolerance_for(model, device), key[0], key[1])
            cache[key] = result
            return False
        cache[key] = result
        if result.ok:
            logger.info("packed ModernBERT forward self-check on %s (%s): max relative error %.2e (tolerance %.0e)",
                        result.device, result.dtype, result.max_error, result.tolerance)
        elif not strict:
            logger.warning("packed ModernBERT forward differs from Hugging Face's on %s (%s): max relative error "
                           "%.3g > %.0e; using the Hugging Face forward for the rest of the run",
                           result.device, result.dtype, result.max_error, result.tolerance)
    if not result.ok and strict:
        raise EmbedkitError(f"packed: on, but the packed ModernBERT forward differs from Hugging Face's on "
                            f"{result.device} ({result.dtype}): max relative error {result.max_error:.3g} > "
                            f"{result.tolerance:.0e}; set packed to auto (falls back) or off")
    return result.ok


def embeddings_ok(model: ModernBertModel, key: Hashable, reference: Callable[[], Any], packed: Callable[[], Any],
                  strict: bool, what: str) -> bool:
    """Whether the packed path's final embeddings equal the library's on the caller's sample (checked once per
    ``key``, with the device and compute dtype added to it).

    ``reference`` and ``packed`` each return the embeddings of the same texts: a ``(n, dim)`` array or a list of
    ``(tokens_i, dim)`` arrays.

    Raises:
        EmbedkitError: on a mismatch when ``strict``.
    """
    from embedkit.models.precision import max_relative_error

    device = next(model.parameters()).device
    dtype = str(_compute_dtype(model, device)).removeprefix("torch.")
    cache: dict[Hashable, SelfCheck] = model.__dict__.setdefault(_EMBEDDINGS_ATTR, {})
    full_key = (key, str(device), dtype)
    result = cache.get(full_key)
    if result is None:
        tolerance = tolerance_for(model, device)
        with torch.inference_mode():
            expected, got = reference(), packed()
        error = max_relative_error(got, expected)
        result = cache[full_key] = SelfCheck(error <= tolerance, error, tolerance, str(device), dtype)
        if result.ok:
            logger.info("packed %s self-check on %s (%s): max relative error %.2e (tolerance %.0e)", what,
                        result.device, dtype, error, tolerance)
        elif not strict:
            logger.warning("packed %s differ from the library's on %s (%s): max relative error %.3g > %.0e; using "
                           "the library's encode for the rest of the run", what, result.device, dtype, error, tolerance)
    if not result.ok and strict:
        raise EmbedkitError(f"packed: on, but packed {what} differ from the library's on {result.device} "
                            f"({result.dtype}): max relative error {result.max_error:.3g} > {result.tolerance:.0e}; "
                            "set packed to auto (falls back) or off")
    return result.ok
