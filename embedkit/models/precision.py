"""Compute precision of encoding: ``fp32`` or ``bf16`` (CPUs with AVX512-BF16 or AMX, and GPUs).

``bf16`` is an explicit request for a fast path, so it never falls back silently: a CPU without native bf16
(where it would run several times slower) is an error, and the first call's embeddings are compared with
the fp32 ones of the same encoder on a few of its texts (the same relative-error test as the packed
forward's self-check); a mismatch is an error too. Any encoder gets it the same way, as bf16 autocast
around its calls (:class:`PrecisionEncoder`): the packed ModernBERT forward, sentence-transformers
``encode`` for other backbones, ColBERT.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from embedkit.errors import EmbedkitError
from embedkit.models.encoder import Encoded, Encoder

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
CHECK_TEXTS = 8
BF16_TOLERANCE = 5e-2  # per-vector ||bf16 - fp32|| / ||fp32||, as the packed forward's half-precision check


@functools.cache
def cpu_name() -> str:
    """The CPU model as ``/proc/cpuinfo`` names it (every benchmark result names its machine)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "cpu"


@functools.cache
def cpu_bf16_features() -> tuple[str, ...]:
    """The native bf16 instruction sets of this CPU found in ``/proc/cpuinfo`` (``avx512_bf16``, ``amx_bf16``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return tuple(f for f in ("avx512_bf16", "amx_bf16") if f in flags)
    return ()


def require_bf16(device: torch.device) -> None:
    """Raise :class:`EmbedkitError` when bf16 on ``device`` would be emulated (slow) rather than native."""
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            raise EmbedkitError(f"precision bf16: {torch.cuda.get_device_name(device)} has no bf16 support; "
                                "use precision fp32")
        return
    if device.type == "cpu" and not cpu_bf16_features():
        raise EmbedkitError(f"precision bf16 needs a CPU with AVX512-BF16 or AMX; this one ({cpu_name()}) has "
                            "neither, where bf16 runs slower than fp32. Use precision fp32")


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for ``precision="bf16"``; nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _vectors(out: Any) -> list[np.ndarray]:
    """Rows of a dense ``(n, dim)`` output, or the token vectors of a multi-vector one, as 2-d arrays."""
    if isinstance(out, np.ndarray):
        return [out]
    return [np.asarray(v) for v in out]


def max_relative_error(got: Any, expected: Any) -> float:
    """Largest per-vector ``||got - expected|| / ||expected||``; inf when the shapes differ."""
    worst = 0.0
    got_v, exp_v = _vectors(got), _vectors(expected)
    if len(got_v) != len(exp_v):
        return float("inf")
    for a, b in zip(got_v, exp_v):
        if a.shape != b.shape:
            return float("inf")
        if a.size:
            scale = np.maximum(np.linalg.norm(b, axis=-1), 1e-6)
            worst = max(worst, float((np.linalg.norm(a.astype(np.float64) - b, axis=-1) / scale).max()))
    return worst if np.isfinite(worst) else float("inf")


class PrecisionEncoder:
    """An encoder whose ``encode_documents`` / ``encode_queries`` run in bf16, checked against fp32 once.

    Everything else (``dim``, ``model``, ``maxsim``, ...) is the wrapped encoder's, so it is an
    :class:`~embedkit.models.encoder.Encoder` (and a ``LateInteractionEncoder`` when it wraps one).
    """

    def __init__(self, encoder: Encoder, device: torch.device, precision: Precision = "bf16"):
        self.encoder, self.device, self.precision = encoder, device, precision
        self._checked: set[str] = set()
        if precision == "bf16":
            require_bf16(device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["encoder"], name)

    def _run(self, side: str, fn: Any, texts: list[str]) -> Any:
        if self.precision == "fp32" or not texts:
            return fn(texts)
        if side not in self._checked:
            sample = texts[:CHECK_TEXTS]
            expected = fn(sample)  # fp32: autocast off
            with autocast(self.device, self.precision):
                got = fn(sample)
            error = max_relative_error(got, expected)
            if error > BF16_TOLERANCE:
                raise EmbedkitError(f"precision bf16: the {side} embeddings differ from fp32 by a relative error of "
                                    f"{error:.3g} (> {BF16_TOLERANCE}) on this model; use precision fp32")
            logger.info("precision bf16 on %s: %s embeddings within %.2e of fp32", self.device, side, error)
            self._checked.add(side)
        with autocast(self.device, self.precision):
            return fn(texts)

    def encode_documents(self, texts: list[str]) -> Encoded:
        return self._run("document", self.encoder.encode_documents, texts)

    def encode_queries(self, texts: list[str]) -> Encoded:
        return self._run("query", self.encoder.encode_queries, texts)


def model_device(encoder: Encoder) -> torch.device:
    """The device of an encoder's model (CPU when it has none)."""
    try:
        return next(encoder.model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")
