"""Fast inference with the packed ModernBERT forward: whole token-budget batches, no padding at all.

:class:`PackedTextEncoder` is what :class:`~embedkit.models.dense.DenseEncoder` (and so ``embedkit index``,
``embedkit eval`` and mining) runs for a ModernBERT SentenceTransformer; ColBERT documents go through
:mod:`embedkit.models.packed_documents`, which shares the device loop here. Per call:

- the texts are tokenised on worker threads, in small chunks, into packed batches
  (:mod:`embedkit.models.prefetch`), while the device computes earlier ones; a caller that knows its next
  texts submits them ahead (:meth:`PackedTextEncoder.submit`), so calls follow each other without a gap;
- each batch goes to the device with a non-blocking copy from pinned memory (CUDA), through the model's one
  packed forward (compiled on CUDA, :mod:`embedkit.models.packed_forward`), pooling (float32) and the
  modules after it;
- embeddings stay on the device until the call is complete, then come back in one copy.

Before the first batch, three checks (:mod:`embedkit.models.selfcheck`, :mod:`embedkit.models.tokenizing`):
the forward against HF's, the token ids against the library's tokenisation, and the final embeddings of a
few of the call's texts against ``SentenceTransformer.encode``. A mismatch makes the encoder fall back to
the library's path with a warning (or, with ``strict``, raise).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedkit.errors import EmbedkitError
from embedkit.models.modernbert_unpadded import Pooling, hf_forward
from embedkit.models.packed_forward import PackedForward, base_model, is_modernbert, packed_forward
from embedkit.models.packing import AttentionKernel, pool_packed, resolve_kernel
from embedkit.models.precision import Precision, require_bf16
from embedkit.models.prefetch import HostBatch, HostPipeline, PackedJob
from embedkit.models.selfcheck import embeddings_ok, packed_path_ok
from embedkit.models.tokenizing import TextSide, check_tokens, library_strips

logger = logging.getLogger(__name__)

TOKEN_CHECK_TEXTS = 64  # texts of the first call whose token ids are compared with the library's
EMBEDDING_CHECK_TEXTS = 4  # the shortest of those, whose final embeddings are compared
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


def compute_autocast(model: torch.nn.Module, precision: Precision = "fp32") -> contextlib.AbstractContextManager:
    """bf16 autocast for fp32 weights on CUDA (the flash kernels take half precision) and on CPU for
    ``precision="bf16"``; none for weights already in bf16/fp16, where autocast would turn every LayerNorm
    output, and with it the residual stream, back into fp32."""
    param = next(model.parameters())
    if param.dtype != torch.float32:
        return contextlib.nullcontext()
    if param.device.type == "cuda" or (param.device.type == "cpu" and precision == "bf16"):
        return torch.autocast(param.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def default_token_budget(device: torch.device) -> int:
    """Real tokens per packed batch. On a GPU large enough to fill it (the GEMMs of 64k tokens); on CPU the
    attention runs padded to each batch's longest text, so batches stay small enough to hold texts of similar
    length (they are packed longest first): 4,096 measured best there (16,384: 1.05x ST, 4,096: 1.39x)."""
    return 65536 if device.type == "cuda" else 4096


def checked_forward(model: torch.nn.Module, backend: AttentionKernel, compile: bool | None, strict: bool,
                    autocast: contextlib.AbstractContextManager) -> PackedForward | None:
    """The model's packed forward, or ``None`` when its first-use self-check failed (fall back)."""
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    with autocast:
        forward = packed_forward(model, resolve_kernel(device, dtype, backend), compile=compile)
        return forward if packed_path_ok(model, forward, strict=strict) else None


def run_packed(model: torch.nn.Module, job: PackedJob | Iterator[HostBatch], forward: PackedForward,
               show_progress_bar: bool, desc: str, total: int,
               ) -> Iterator[tuple[HostBatch, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(batch, input_ids, cu_seqlens, hidden)`` on the device for every batch of ``job``; ``hidden`` is
    ``(tokens, hidden)``. Runs in inference mode with the model in eval mode."""
    from embedkit.quiet import progress_bar

    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), progress_bar(total=total, desc=desc, disable=not show_progress_bar) as bar:
            for batch in job:
                input_ids = batch.input_ids.to(device, non_blocking=cuda)
                cu_seqlens = batch.cu_seqlens.to(device, non_blocking=cuda)
                yield batch, input_ids, cu_seqlens, forward(input_ids, cu_seqlens, batch.max_seqlen)
                bar.update(len(batch.rows))
    finally:
        model.train(was_training)


def check_sample(texts: list[str], ids: list[list[int]]) -> list[str]:
    """The :data:`EMBEDDING_CHECK_TEXTS` shortest texts (in tokens) of those whose ids were checked."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))[:EMBEDDING_CHECK_TEXTS]
    return [texts[i] for i in sorted(order)]


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


class PackedTextEncoder:
    """Packed encoding of a ModernBERT SentenceTransformer with one prompt (see the module docstring).

    Args:
        max_tokens: real tokens per batch; ``None``: :func:`default_token_budget` for the device.
        pooling: ``"mean"`` or ``"cls"``; ``None`` takes the model's own ``Pooling`` mode (an override is not
            compared with ``encode``, which pools the model's way).
        normalize: L2-normalise the embeddings.
        strict: a failed check raises :class:`~embedkit.errors.EmbedkitError` instead of falling back.
        compile: ``torch.compile`` the forward; ``None`` decides per device.
        precision: ``"bf16"`` computes in bf16 on CPU too (fast with AVX512-BF16/AMX; checked like any path).
        pipeline: the host pipeline to tokenise on (one per encoder; :meth:`HostPipeline.for_device`).
    """

    def __init__(self, st_model: Any, prompt: str | None = None, pooling: Pooling | None = None,
                 normalize: bool = False, *, max_tokens: int | None = None, backend: AttentionKernel = "auto",
                 strict: bool = False, compile: bool | None = None, precision: Precision = "fp32",
                 pipeline: HostPipeline | None = None):
        self.st_model, self.prompt, self.normalize, self.strict = st_model, prompt, normalize, strict
        self.backend, self.compile, self.precision = backend, compile, precision
        self.model = base_model(st_model[0].auto_model)
        if not is_modernbert(self.model):
            raise ValueError(f"packed encoding needs a ModernBERT backbone, got {type(self.model).__name__}")
        self.device = next(self.model.parameters()).device
        if precision == "bf16":
            require_bf16(self.device)
        self.max_tokens = max_tokens or default_token_budget(self.device)
        index, module = _pooling(st_model)
        self.after = list(st_model)[index + 1:]  # e.g. Dense, Normalize
        self.unsupported: str | None = None
        modes = pooling_modes(module) if module is not None else ("mean",)
        if module is not None and not module.get_config_dict().get("include_prompt", True):
            self.unsupported = "Pooling(include_prompt=False)"
        elif pooling is None and (len(modes) != 1 or modes[0] not in ("mean", "cls")):
            self.unsupported = f"pooling {modes}"
        self.mode: Pooling = pooling or (modes[0] if len(modes) == 1 else "mean")
        self.own_pooling = pooling is None or (len(modes) == 1 and pooling == modes[0])
        self.pipeline = pipeline or HostPipeline.for_device(self.device)
        self._tokenize: Callable[[list[str]], list[list[int]]] | None = None
        self._fallback = False
        self._checked: tuple | None = None  # the state (device, dtype) the checks passed for
        self._forward: PackedForward | None = None

    @property
    def dim(self) -> int:
        return embedding_dimension(self.st_model)

    def _library_encode(self, texts: list[str], show_progress_bar: bool = False) -> np.ndarray:
        emb = self.st_model.encode(texts, prompt=self.prompt, normalize_embeddings=self.normalize, batch_size=32,
                                   convert_to_numpy=True, show_progress_bar=show_progress_bar)
        return np.ascontiguousarray(emb, dtype=np.float32)

    def tokenizer_fn(self) -> Callable[[list[str]], list[list[int]]]:
        if self._tokenize is None:
            self._tokenize = dense_text_side(self.st_model, self.prompt).tokenizer_fn()
        return self._tokenize

    def submit(self, texts: list[str]) -> PackedJob:
        """Start tokenising ``texts`` on the pipeline now; pass the job to :meth:`encode` with the same texts."""
        forward_backend = resolve_kernel(self.device, next(self.model.parameters()).dtype, self.backend)
        return self.pipeline.submit(texts, self.tokenizer_fn(), self.max_tokens, bucket=forward_backend != "sdpa")

    def _ready(self, texts: list[str], autocast: contextlib.AbstractContextManager) -> PackedForward | None:
        """The checked packed forward, or ``None`` to use the library's path (checks run on first use)."""
        if self._fallback:
            return None
        param = next(self.model.parameters())  # the weights may be cast to bf16 after a first fp32 call
        state = (str(param.device), str(param.dtype), self.precision, torch.is_autocast_enabled(self.device.type))
        if self._checked == state:
            return self._forward
        if self.unsupported:
            if self.strict:
                raise EmbedkitError(f"unpadded: on, but packed encoding does not support {self.unsupported}")
            logger.warning("packed encoding does not support %s; using sentence-transformers' encode", self.unsupported)
            self._fallback = True
            return None
        forward = checked_forward(self.model, self.backend, self.compile, self.strict, autocast)
        if forward is None:
            self._fallback = True
            return None
        side = dense_text_side(self.st_model, self.prompt)
        sample = texts[:TOKEN_CHECK_TEXTS]
        tokenize = check_tokens(side, self.tokenizer_fn(), sample, self.strict)
        if tokenize is not self._tokenize:  # mismatch: the library's tokenisation from now on
            self._tokenize = tokenize
        if self.own_pooling and sample:
            few = check_sample(sample, tokenize(sample))
            key = ("dense", self.prompt, self.mode, self.normalize, tuple(type(m).__name__ for m in self.after))

            def reference() -> np.ndarray:  # the library's own path, in its own precision
                with hf_forward(self.st_model), torch.autocast(self.device.type, enabled=False):
                    return self._library_encode(few)

            def packed() -> np.ndarray:
                job = self.pipeline.submit(few, tokenize, self.max_tokens, bucket=forward.backend != "sdpa")
                return self._encode_batches(job, forward, len(few), False)

            with autocast:  # the check's key and tolerance follow the compute dtype
                ok = embeddings_ok(self.model, key, reference, packed, self.strict, "embeddings")
            if not ok:
                self._fallback = True
                return None
        self._checked, self._forward = state, forward
        return forward

    def _encode_batches(self, job: PackedJob, forward: PackedForward, total: int, progress: bool) -> np.ndarray:
        outputs: list[torch.Tensor] = []  # (n_b, dim) each, kept on the device until the call is done
        rows: list[np.ndarray] = []
        cast = next((p.dtype for m in self.after for p in m.parameters() if p.is_floating_point()), None)
        for batch, _, cu_seqlens, hidden in run_packed(self.model, job, forward, progress, "encode (packed)", total):
            pooled = pool_packed(hidden, cu_seqlens, self.mode)  # (n, hidden) float32
            features = {"sentence_embedding": pooled.to(cast) if cast is not None else pooled}
            for module in self.after:
                features = module(features)
            emb = features["sentence_embedding"].float()  # (n, dim)
            outputs.append(F.normalize(emb, p=2, dim=-1) if self.normalize else emb)
            rows.append(batch.rows)
        stacked = torch.cat(outputs).cpu().numpy()  # (total, dim), in batch order: the one device->host copy
        result = np.empty_like(stacked)
        result[np.concatenate(rows)] = stacked
        return result

    def encode(self, texts: list[str], job: PackedJob | None = None, show_progress_bar: bool = False) -> np.ndarray:
        """``(len(texts), dim)`` float32 embeddings in the input order (``job``: from :meth:`submit`)."""
        if not texts:
            if job is not None:
                job.cancel()
            return np.zeros((0, self.dim), dtype=np.float32)
        autocast = compute_autocast(self.model, self.precision)
        forward = self._ready(texts, autocast)
        if forward is None:
            if job is not None:
                job.cancel()
            return self._library_encode(texts, show_progress_bar)
        if job is None or job.tokenize is not self._tokenize or (job.texts is not texts and job.texts != texts):
            if job is not None:
                job.cancel()
            job = self.pipeline.submit(texts, self._tokenize or self.tokenizer_fn(), self.max_tokens,
                                       bucket=forward.backend != "sdpa")
        with autocast:
            return self._encode_batches(job, forward, len(texts), show_progress_bar)


def encode_packed(st_model: Any, texts: list[str], max_tokens_per_batch: int | None = None,
                  pooling: Pooling | None = None, normalize: bool = False, *, prompt: str | None = None,
                  show_progress_bar: bool = False, backend: AttentionKernel = "auto", strict: bool = False,
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
                                backend=backend, strict=strict, compile=compile, precision=precision,
                                pipeline=None if threads is None else HostPipeline.for_device(
                                    next(base_model(st_model[0].auto_model).parameters()).device, threads))
    try:
        return encoder.encode(texts, show_progress_bar=show_progress_bar)
    finally:
        encoder.pipeline.close()
