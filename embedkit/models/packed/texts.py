"""Packed encoding of texts with a ModernBERT SentenceTransformer: whole token-budget batches, no padding at all.

:class:`PackedTextEncoder` is what :class:`~embedkit.models.dense.DenseEncoder` (and so ``embedkit index``,
``embedkit eval`` and mining) runs for a ModernBERT SentenceTransformer; ColBERT documents are
:mod:`embedkit.models.packed.documents`. Both are a :class:`~embedkit.models.packed.base.PackedEncoder`:

- the texts are tokenised on worker threads, in small chunks, into packed batches
  (:mod:`embedkit.models.packed.host`), while the device computes earlier ones; a caller that knows its next
  texts submits them ahead (:meth:`PackedTextEncoder.submit`), so calls follow each other without a gap;
- each batch goes to the device with a non-blocking copy from pinned memory (CUDA), through the model's one
  packed forward (compiled on CUDA, :mod:`embedkit.models.packed.forward`), then, here, pooling (float32)
  and the modules after it;
- embeddings stay on the device until the call is complete, then come back in one copy.

Before the first batch, three checks (:mod:`embedkit.models.packed.selfcheck`,
:mod:`embedkit.models.packed.tokenizing`): the forward against HF's, the token ids against the library's
tokenisation, and the final embeddings of a few of the call's texts against ``SentenceTransformer.encode``.
A mismatch makes the encoder fall back to the library's path with a warning (or, with ``strict``, raise).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedkit.models.packed.base import PackedEncoder
from embedkit.models.packed.forward import base_model
from embedkit.models.packed.host import HostPipeline
from embedkit.models.packed.kernels import AUTO, KernelChoice
from embedkit.models.packed.layout import Pooling, pool_packed
from embedkit.models.packed.tokenizing import TextSide, library_strips
from embedkit.models.precision import Precision

logger = logging.getLogger(__name__)

_SIDES_ATTR = "_embedkit_text_sides"

# sentence-transformers < 5.4 names pooling modes with boolean config keys, later versions with one key
_LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
                        "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


def embedding_dimension(st_model: Any) -> int:
    """Output dimension of a SentenceTransformer (``get_embedding_dimension`` since 5.4, the old name before)."""
    get = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
    return int(get())


def pooling_modes(module: Any) -> tuple[str, ...]:
    """The pooling modes of a sentence-transformers ``Pooling`` module, read from its saved config (the one
    API every version has; ``get_pooling_mode_str`` is gone since 5.4)."""
    config = module.get_config_dict()
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        return (mode,) if isinstance(mode, str) else tuple(mode)
    return tuple(name for key, name in _LEGACY_POOLING_KEYS.items() if config.get(key))


def _pooling(st_model: Any) -> tuple[int, Any]:
    """Index and module of the model's ``Pooling`` (``len(st_model), None`` when it has none)."""
    for i, module in enumerate(st_model):
        if type(module).__name__ == "Pooling" and hasattr(module, "get_config_dict"):
            return i, module
    return len(st_model), None


def dense_text_side(st_model: Any, prompt: str | None) -> TextSide:
    """How a SentenceTransformer tokenises (``encode``) texts with ``prompt``, kept on the model per prompt and
    length."""
    transformer = st_model[0]
    key = (prompt or "", transformer.max_seq_length)
    sides: dict[tuple, TextSide] = st_model.__dict__.setdefault(_SIDES_ATTR, {})
    if key not in sides:
        tokenize = getattr(st_model, "preprocess", None) or st_model.tokenize  # sentence-transformers >= 5.4 / older

        side = TextSide(transformer.tokenizer, transformer.max_seq_length, prompt=prompt or "",
                        lowercase=bool(getattr(transformer, "do_lower_case", False)),
                        reference=lambda texts: tokenize([(prompt or "") + t for t in texts]))
        sides[key] = library_strips(side)
    return sides[key]


class PackedTextEncoder(PackedEncoder):
    """Packed encoding of a ModernBERT SentenceTransformer with one prompt: one pooled vector per text (see the
    module docstring; everything but the pooling is :class:`~embedkit.models.packed.base.PackedEncoder`).

    Args:
        pooling: ``"mean"`` or ``"cls"``; ``None`` takes the model's own ``Pooling`` mode (an override is not
            compared with ``encode``, which pools the model's way).
        normalize: L2-normalise the embeddings.
        **settings: :class:`~embedkit.models.packed.base.PackedEncoder`'s ``max_tokens``, ``kernel``, ``strict``,
            ``compile``, ``precision``, ``pipeline``.
    """

    def __init__(self, st_model: Any, prompt: str | None = None, pooling: Pooling | None = None,
                 normalize: bool = False, **settings: Any):
        self.st_model, self.prompt, self.normalize = st_model, prompt, normalize
        index, module = _pooling(st_model)
        self.after = list(st_model)[index + 1:]  # e.g. Dense, Normalize
        modes = pooling_modes(module) if module is not None else ("mean",)
        self.mode: Pooling = pooling or (modes[0] if len(modes) == 1 else "mean")
        key = ("dense", prompt, self.mode, normalize, tuple(type(m).__name__ for m in self.after))
        super().__init__(st_model, dense_text_side(st_model, prompt), name="embeddings", check_key=key, **settings)
        if module is not None and not module.get_config_dict().get("include_prompt", True):
            self.unsupported = "Pooling(include_prompt=False)"
        elif pooling is None and (len(modes) != 1 or modes[0] not in ("mean", "cls")):
            self.unsupported = f"pooling {modes}"
        self.check_outputs = pooling is None or (len(modes) == 1 and pooling == modes[0])  # the model's own pooling
        # the dtype of the modules after pooling (fp32 when only the transformer's weights were cast to bf16)
        self._cast = next((p.dtype for m in self.after for p in m.parameters() if p.is_floating_point()), None)

    @property
    def dim(self) -> int:
        return embedding_dimension(self.st_model)

    def _reference(self, texts: list[str], show_progress_bar: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = self.st_model.encode(texts, prompt=self.prompt, normalize_embeddings=self.normalize, batch_size=32,
                                   convert_to_numpy=True, show_progress_bar=show_progress_bar)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def _batch_output(self, input_ids: torch.Tensor, cu_seqlens: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        pooled = pool_packed(hidden, cu_seqlens, self.mode)  # (n, hidden) float32
        features = {"sentence_embedding": pooled.to(self._cast) if self._cast is not None else pooled}
        for module in self.after:
            features = module(features)
        emb = features["sentence_embedding"].float()  # (n, dim)
        return F.normalize(emb, p=2, dim=-1) if self.normalize else emb


def encode_packed(st_model: Any, texts: list[str], max_tokens_per_batch: int | None = None,
                  pooling: Pooling | None = None, normalize: bool = False, *, prompt: str | None = None,
                  show_progress_bar: bool = False, kernel: KernelChoice = AUTO, strict: bool = False,
                  compile: bool | None = None, precision: Precision = "fp32", threads: int | None = None,
                  ) -> np.ndarray:
    """Embed ``texts`` with a ModernBERT SentenceTransformer, packed into token-budget batches (one call of a
    :class:`PackedTextEncoder`; its checks run once per model and settings, not once per call).

    Tokenises as ``SentenceTransformer.encode`` does (optional prompt prefix, truncation at
    ``max_seq_length``) but without padding, packs the texts into batches of at most ``max_tokens_per_batch``
    tokens, runs the packed forward, pools every sequence (float32) and applies the modules after the model's
    ``Pooling`` (e.g. ``Dense``, ``Normalize``).

    Returns:
        ``(len(texts), dim)`` float32, in the input order.
    """
    encoder = PackedTextEncoder(st_model, prompt, pooling, normalize, max_tokens=max_tokens_per_batch,
                                kernel=kernel, strict=strict, compile=compile, precision=precision,
                                pipeline=None if threads is None else HostPipeline.for_device(
                                    next(base_model(st_model[0].auto_model).parameters()).device, threads))
    try:
        return encoder.encode(texts, show_progress_bar=show_progress_bar)
    finally:
        encoder.close()
