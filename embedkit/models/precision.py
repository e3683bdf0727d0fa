"""Compute precision of encoding: ``fp32``, ``bf16`` (CPUs with AVX512-BF16 or AMX, and GPUs) or ``int8`` (the
ONNX Runtime and OpenVINO model backends, :mod:`embedkit.models.backends`).

``bf16`` is an explicit request for a fast path, so it never falls back silently: a CPU without native bf16
(where it would run several times slower) is an error, and the first call's embeddings are compared with
the fp32 ones of the same encoder on a few of its texts (the same relative-error test as the packed
forward's self-check); a mismatch is an error too. Any encoder gets it the same way (:class:`PrecisionEncoder`):
the packed ModernBERT forward, sentence-transformers ``encode`` for other backbones, ColBERT.

How: the transformer's weights are cast to bf16 once (:func:`cast_to_bf16`), not per call. bf16 autocast
casts every weight on every matmul; a model whose weights are already bf16 skips that (compared in
docs/measurements/cpu.md). What precision needs stays fp32: ``nn.LayerNorm`` weights (CPU ``layer_norm``
takes bf16 input with fp32 weights and computes in fp32), and everything after the transformer (pooling,
projection, normalisation), which a forward hook hands fp32 token vectors.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from embedkit.errors import EmbedkitError
from embedkit.models.encoder import Encoded, Encoder

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "int8"]
CHECK_TEXTS = 8
WARM_UP_TEXTS = ["how do I sort a list of tuples by the second item", "def add(a, b):\n    return a + b",
                 "The Eiffel Tower is a wrought-iron lattice tower in Paris.", "open a file and read it line by line"]
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


def transformer_module(model: Any) -> Any:
    """The sentence-transformers ``Transformer`` module of a SentenceTransformer / MultiVectorEncoder / PyLate /
    CrossEncoder model (the first module with an ``auto_model``), ``None`` when it has none."""
    if hasattr(model, "auto_model"):
        return model
    try:
        modules = list(model)
    except TypeError:  # not a sequence of modules
        return None
    return next((module for module in modules if hasattr(module, "auto_model")), None)


def _fp32_outputs(module: torch.nn.Module, args: Any, output: Any) -> Any:
    """Forward hook: the transformer's floating outputs (token vectors, logits) as fp32 for the modules after it."""
    if isinstance(output, MutableMapping):  # a dict, or the tokenizer's BatchEncoding passed along
        for key, value in output.items():
            if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
                output[key] = value.float()
    return output


def cast_to_bf16(model: Any) -> int:
    """Cast ``model``'s transformer weights to bf16 in place, once; ``nn.LayerNorm`` weights and the modules after
    the transformer stay fp32 (see the module docstring). On the CPU its linear layers then run through oneDNN
    with packed weights (:mod:`~embedkit.models.onednn_linear`). Returns the number of parameters cast.

    Raises:
        EmbedkitError: when the model has no sentence-transformers ``Transformer`` module.
    """
    module = transformer_module(model)
    if module is None:
        raise EmbedkitError(f"precision bf16: {type(model).__name__} has no transformer module to cast")
    if getattr(module, "_embedkit_bf16", False):
        return 0
    cast = 0
    for sub in module.auto_model.modules():
        if isinstance(sub, torch.nn.LayerNorm):
            continue  # fp32 weights: layer_norm computes in fp32 and returns the input's dtype
        for param in sub.parameters(recurse=False):
            if param.dtype == torch.float32:
                param.data = param.data.to(torch.bfloat16)
                cast += param.numel()
    from embedkit.models.onednn_linear import use_onednn_linears

    fused = use_onednn_linears(module.auto_model)
    if fused:
        logger.info("bf16: %d linear layers run through oneDNN with packed weights", fused)
    module.register_forward_hook(_fp32_outputs)
    module._embedkit_bf16 = True
    return cast


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
    """An encoder whose ``encode_documents`` / ``encode_queries`` run in ``precision`` on a model ``backend``
    (:mod:`embedkit.models.backends`), checked against torch fp32 once.

    On the first call, a few of its texts are encoded in torch fp32 on both sides (documents and queries), then the
    model switches: its weights are cast to bf16 (:func:`cast_to_bf16`, torch) or its transformer is exported and
    run by the backend's runtime; the same texts are encoded again and compared: beyond the tolerance it is an
    :class:`EmbedkitError`, never a silent fallback. Everything else (``dim``, ``model``, ``maxsim``, ...) is the
    wrapped encoder's, so it is an :class:`~embedkit.models.encoder.Encoder` (and a ``LateInteractionEncoder``
    when it wraps one).
    """

    def __init__(self, encoder: Encoder, device: torch.device, precision: Precision = "bf16",
                 backend: str = "torch"):
        from embedkit.models.backends import backend_entry, switches, tolerance

        self.encoder, self.device, self.precision, self.backend = encoder, device, precision, backend
        self._checked: set[str] = set()
        backend_entry(backend, precision)  # a runtime that is missing or a precision it lacks: before any work
        if precision == "bf16":
            require_bf16(device)
        self.tolerance = tolerance(backend, precision)
        self._switches = switches(backend, precision)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["encoder"], name)

    @property
    def what(self) -> str:
        return f"precision {self.precision} on model backend {self.backend}"

    def _switch(self) -> None:
        from embedkit.models.backends import switch

        switch(self.encoder.model, self.backend, self.precision)

    def _switch_and_check(self, texts: list[str]) -> None:
        """torch fp32 embeddings of ``texts`` on both sides, the switch, the new ones, the comparison (once)."""
        sample = texts[:CHECK_TEXTS]
        sides = {"document": self.encoder.encode_documents, "query": self.encoder.encode_queries}
        expected = {side: fn(sample) for side, fn in sides.items()}
        self._switch()
        for side, fn in sides.items():
            error = max_relative_error(fn(sample), expected[side])
            if error > self.tolerance:
                raise EmbedkitError(f"{self.what}: the {side} embeddings differ from torch fp32 by a relative error "
                                    f"of {error:.3g} (> {self.tolerance}) on this model; use precision fp32 and "
                                    "model backend torch")
            logger.info("%s on %s: %s embeddings within %.2e of torch fp32", self.what, self.device, side, error)
            self._checked.add(side)

    def check_now(self, texts: list[str] = WARM_UP_TEXTS) -> None:
        """Switch and check now, on ``texts`` (a server does it at startup, so its first request is not slow and a
        miss stops it before it serves)."""
        if not self._checked and self._switches:
            self._switch_and_check(texts)

    def _run(self, fn: Any, texts: list[str]) -> Any:
        if not self._checked and texts and self._switches:
            self._switch_and_check(texts)
        return fn(texts)

    def encode_documents(self, texts: list[str]) -> Encoded:
        return self._run(self.encoder.encode_documents, texts)

    def encode_queries(self, texts: list[str]) -> Encoded:
        return self._run(self.encoder.encode_queries, texts)


def model_device(encoder: Encoder) -> torch.device:
    """The device of an encoder's model (CPU when it has none)."""
    try:
        return next(encoder.model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")
