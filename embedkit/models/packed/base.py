"""The one packed encoder: texts in, whole token-budget batches through the packed forward, outputs in the input
order; checked on first use against the library's own encoding, which it falls back to on a mismatch.

:class:`PackedEncoder` holds everything a packed encoder does (tokenise ahead on the host pipeline, the
first-use checks of :mod:`embedkit.models.packed.selfcheck`, the fallback, the device loop, the one device->host
copy). A subclass gives only the two things that differ between outputs:

- :meth:`PackedEncoder._batch_output`: what one packed batch's hidden states become on the device: one pooled
  vector per text ``(n, dim)``, or the token vectors of the batch with the ones to keep (:class:`TokenVectors`);
- :meth:`PackedEncoder._reference`: the library's own encoding of some texts (the check's reference and the
  fallback).

:class:`~embedkit.models.packed.texts.PackedTextEncoder` (dense, pooled) and
:class:`~embedkit.models.packed.documents.PackedDocumentEncoder` (ColBERT documents, token vectors) are the two.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embedkit.errors import EmbedkitError
from embedkit.models.packed.forward import PackedForward, base_model, is_modernbert, packed_forward
from embedkit.models.packed.host import HostBatch, HostPipeline, PackedJob
from embedkit.models.packed.kernels import AUTO, KernelChoice, resolve_kernel
from embedkit.models.packed.selfcheck import embeddings_ok, packed_path_ok
from embedkit.models.packed.swap import hf_forward
from embedkit.models.packed.tokenizing import TextSide, check_tokens
from embedkit.models.precision import Precision, require_bf16
from embedkit.models.token_budget import cpu_token_budget

logger = logging.getLogger(__name__)

TOKEN_CHECK_TEXTS = 64  # texts of the first call whose token ids are compared with the library's
EMBEDDING_CHECK_TEXTS = 4  # the shortest of those, whose final embeddings are compared

Vectors = list[np.ndarray]  # one (tokens_i, dim) float32 array per text
Output = np.ndarray | Vectors  # (n, dim) pooled, or token vectors per text


@dataclass
class TokenVectors:
    """One packed batch's token vectors, on the device: ``vectors`` ``(tokens, dim)`` float32 and ``keep``
    ``(tokens,)`` bool, the vectors that belong to the output."""

    vectors: torch.Tensor
    keep: torch.Tensor


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


def default_token_budget(device: torch.device, model: torch.nn.Module | None = None,
                         precision: Precision = "fp32") -> int:
    """Real tokens per packed batch. On a GPU large enough to fill it (the GEMMs of 64k tokens); on CPU the
    global layers' attention runs padded to each batch's longest text (the local layers' runs in blocks), so
    batches stay small enough to hold texts of similar length (they are packed longest first): 4,096 measured
    best there (16,384: 1.05x ST, 4,096: 1.39x), and fewer where ``model``'s widest activation would outgrow
    ``malloc``'s heap (:func:`~embedkit.models.token_budget.cpu_token_budget`)."""
    if device.type == "cuda":
        return 65536
    cap = cpu_token_budget(model, bf16=precision == "bf16", own_attention=True) if model is not None else None
    return min(4096, cap or 4096)


def checked_forward(model: torch.nn.Module, kernel: KernelChoice, compile: bool | None, strict: bool,
                    autocast: contextlib.AbstractContextManager) -> PackedForward | None:
    """The model's packed forward, or ``None`` when its first-use self-check failed (fall back)."""
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    with autocast:
        forward = packed_forward(model, resolve_kernel(device, dtype, kernel), compile=compile)
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


def assemble(outputs: list[torch.Tensor | TokenVectors], rows: list[np.ndarray], lengths: list[int],
             total: int) -> Output:
    """The batches' outputs in the input order, brought to the host in one copy: ``(total, dim)`` for pooled
    outputs, one ``(kept_i, dim)`` array per text for token vectors."""
    order = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if not outputs or not isinstance(outputs[0], TokenVectors):
        stacked = torch.cat(outputs).cpu().numpy()  # (total, dim) in batch order
        result = np.empty_like(stacked)
        result[order] = stacked
        return result
    flat = torch.cat([o.vectors for o in outputs]).cpu().numpy()  # (all tokens, dim)
    keep = torch.cat([o.keep for o in outputs]).cpu().numpy()  # (all tokens,)
    bounds = np.cumsum([0] + lengths)
    vectors: list[np.ndarray | None] = [None] * total
    for row, start, end in zip(order, bounds[:-1], bounds[1:]):
        vectors[row] = flat[start:end][keep[start:end]]
    return vectors


class PackedEncoder:
    """Packed encoding of one library model (see the module docstring).

    Args:
        library_model: the SentenceTransformer, MultiVectorEncoder or PyLate ColBERT; its first module holds the
            ModernBERT.
        side: how the library tokenises these texts (:class:`~embedkit.models.packed.tokenizing.TextSide`).
        name: what the outputs are called in messages (``"embeddings"``, ``"PyLate ColBERT documents"``).
        check_key: the settings that make the outputs differ (the output check runs once per key).
        noun: what the inputs are called in messages and progress bars (``"texts"``, ``"documents"``).
        max_tokens: real tokens per batch; ``None``: :func:`default_token_budget` for the device.
        kernel: the attention kernel (``"auto"``: :mod:`embedkit.models.packed.kernels` picks).
        strict: a failed check raises :class:`~embedkit.errors.EmbedkitError` instead of falling back.
        compile: ``torch.compile`` the forward; ``None`` decides per device.
        precision: ``"bf16"`` computes in bf16 on CPU too (fast with AVX512-BF16/AMX; checked like any path).
        pipeline: the host pipeline to tokenise on (:meth:`HostPipeline.for_device` when omitted).
    """

    def __init__(self, library_model: Any, side: TextSide, *, name: str, check_key: Hashable, noun: str = "texts",
                 max_tokens: int | None = None, kernel: KernelChoice = AUTO, strict: bool = False,
                 compile: bool | None = None, precision: Precision = "fp32", pipeline: HostPipeline | None = None):
        self.library_model, self.side, self.name, self.check_key, self.noun = library_model, side, name, check_key, noun
        self.kernel, self.strict, self.compile, self.precision = kernel, strict, compile, precision
        self.model = base_model(library_model[0].auto_model)
        if not is_modernbert(self.model):
            raise ValueError(f"packed {noun} need a ModernBERT backbone, got {type(self.model).__name__}")
        self.device = next(self.model.parameters()).device
        if precision == "bf16":
            require_bf16(self.device)
        self.max_tokens = max_tokens or default_token_budget(self.device, self.model, precision)
        self.pipeline = pipeline or HostPipeline.for_device(self.device)
        self.unsupported: str | None = None  # why this model cannot be encoded packed (a subclass says)
        self.check_outputs = True  # compare the final outputs with the library's (off where they differ by design)
        self._tokenize: Callable[[list[str]], list[list[int]]] | None = None
        self._fallback = False
        self._checked: tuple | None = None  # the state (device, dtype, ...) the checks passed for
        self._forward: PackedForward | None = None

    # ------------------------------------------------------------------ the two hooks

    def _batch_output(self, input_ids: torch.Tensor, cu_seqlens: torch.Tensor,
                      hidden: torch.Tensor) -> torch.Tensor | TokenVectors:
        """One batch's output on the device from its ``(tokens, hidden)`` states: ``(n, dim)`` float32 pooled
        vectors, or :class:`TokenVectors`."""
        raise NotImplementedError

    def _reference(self, texts: list[str], show_progress_bar: bool = False) -> Output:
        """The library's own encoding of ``texts`` (also of none), as :meth:`encode` returns it."""
        raise NotImplementedError

    # ------------------------------------------------------------------ written once

    def tokenizer_fn(self) -> Callable[[list[str]], list[list[int]]]:
        """Texts -> token ids as the library tokenises them (its own tokenisation after a mismatch)."""
        if self._tokenize is None:
            self._tokenize = self.side.tokenizer_fn()
        return self._tokenize

    def submit(self, texts: list[str]) -> PackedJob:
        """Start tokenising ``texts`` on the pipeline now; pass the job to :meth:`encode` with the same texts."""
        kernel = resolve_kernel(self.device, next(self.model.parameters()).dtype, self.kernel)
        return self.pipeline.submit(texts, self.tokenizer_fn(), self.max_tokens, bucket=kernel.buckets_lengths)

    def _encode_job(self, job: PackedJob, forward: PackedForward, total: int, progress: bool) -> Output:
        outputs, rows, lengths = [], [], []  # outputs stay on the device until the call is done
        for batch, input_ids, cu_seqlens, hidden in run_packed(self.model, job, forward, progress,
                                                               f"encode {self.noun} (packed)", total):
            outputs.append(self._batch_output(input_ids, cu_seqlens, hidden))
            rows.append(batch.rows)
            lengths += batch.lengths
        return assemble(outputs, rows, lengths, total)

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
                raise EmbedkitError(f"packed: on, but packed encoding does not support {self.unsupported}")
            logger.warning("packed encoding does not support %s; using the library's encode", self.unsupported)
            self._fallback = True
            return None
        forward = checked_forward(self.model, self.kernel, self.compile, self.strict, autocast)
        if forward is None:
            self._fallback = True
            return None
        sample = texts[:TOKEN_CHECK_TEXTS]
        self._tokenize = tokenize = check_tokens(self.side, self.tokenizer_fn(), sample, self.strict, what=self.noun)
        if self.check_outputs and sample:
            few = check_sample(sample, tokenize(sample))

            def reference() -> Output:  # the library's own path, in its own precision
                with hf_forward(self.library_model), torch.autocast(self.device.type, enabled=False):
                    return self._reference(few)

            def packed() -> Output:
                job = self.pipeline.submit(few, tokenize, self.max_tokens, bucket=forward.kernel.buckets_lengths)
                return self._encode_job(job, forward, len(few), False)

            with autocast:  # the check's key and tolerance follow the compute dtype
                ok = embeddings_ok(self.model, self.check_key, reference, packed, self.strict, self.name)
            if not ok:
                self._fallback = True
                return None
        self._checked, self._forward = state, forward
        return forward

    def encode(self, texts: list[str], job: PackedJob | None = None, show_progress_bar: bool = False) -> Output:
        """The outputs of ``texts`` in the input order (``job``: from :meth:`submit`, for the same texts; a job
        that is not used, for whatever reason, is cancelled)."""
        if not texts:
            if job is not None:
                job.cancel()
            return self._reference([])
        autocast = compute_autocast(self.model, self.precision)
        forward = self._ready(texts, autocast)
        if forward is None:
            if job is not None:
                job.cancel()
            return self._reference(texts, show_progress_bar)
        if job is None or job.tokenize is not self._tokenize or (job.texts is not texts and job.texts != texts):
            if job is not None:
                job.cancel()
            job = self.pipeline.submit(texts, self.tokenizer_fn(), self.max_tokens,
                                       bucket=forward.kernel.buckets_lengths)
        with autocast:
            return self._encode_job(job, forward, len(texts), show_progress_bar)

    def close(self) -> None:
        """Stop the host pipeline's threads (an encoder made for one call)."""
        self.pipeline.close()
