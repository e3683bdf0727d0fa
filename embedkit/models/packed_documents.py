"""Packed ColBERT documents: whole token-budget batches, no padding, for any ColBERT library.

What differs between libraries is small and is described by a :class:`DocumentSide`, which the ColBERT
library registry builds for its library and passes in (nothing here decides which library a model comes
from):

- how a document is tokenised (:class:`~embedkit.models.tokenizing.TextSide`: prompt text or an inserted
  marker token, truncation length);
- which modules run after the backbone, with which keyword arguments (projection ``Dense``, sentence-
  transformers' ``MultiVectorMask`` with ``task="document"``, token-level ``Normalize``): they are called on
  the packed batch as one sequence of shape ``(1, tokens, ...)`` with ``input_ids``, ``attention_mask`` (all
  ones) and ``token_embeddings``, so they must act token by token (no token pooling);
- which token vectors are dropped: ``skiplist`` ids (PyLate drops punctuation in ``encode``) and whatever
  the modules set to 0 in ``attention_mask`` (``MultiVectorMask``);
- whether kept vectors are L2-normalised afterwards (PyLate's ``encode``; sentence-transformers has a
  ``Normalize`` module instead);
- the library's own document encoding, the reference of the first-use check and the fallback.

:func:`pylate_documents` and :func:`sentence_transformers_documents` build it for PyLate ``ColBERT`` and
sentence-transformers ``MultiVectorEncoder``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedkit.models.modernbert_unpadded import hf_forward
from embedkit.models.packed_encoding import (TOKEN_CHECK_TEXTS, check_sample, checked_forward, compute_autocast,
                                             default_token_budget, run_packed)
from embedkit.models.packed_forward import base_model, is_modernbert
from embedkit.models.packing import AttentionKernel, resolve_kernel
from embedkit.models.precision import Precision
from embedkit.models.prefetch import HostPipeline, PackedJob
from embedkit.models.selfcheck import embeddings_ok
from embedkit.models.tokenizing import TextSide, check_tokens, library_strips

logger = logging.getLogger(__name__)

Vectors = list[np.ndarray]  # one (tokens_i, dim) float32 array per document


@dataclass
class DocumentSide:
    """What a ColBERT library contributes to packed document encoding (see the module docstring)."""

    text: TextSide
    modules: Sequence[tuple[torch.nn.Module, dict[str, Any]]]  # after the backbone, with forward kwargs
    reference: Callable[[list[str]], Vectors]  # the library's own document encoding
    skiplist: Sequence[int] = ()  # token ids whose vectors are dropped
    normalize: bool = False  # L2-normalise each kept vector
    name: str = field(default="colbert")  # for messages and check keys


def pylate_documents(model: Any) -> DocumentSide:
    """A PyLate ``ColBERT``'s document side: ``[D]`` inserted after ``[CLS]`` (truncation at
    ``document_length`` counting it), ``Dense`` projections, punctuation skiplist, normalised in ``encode``."""
    prefix_id = getattr(model, "document_prefix_id", None)
    length = model.document_length - (1 if prefix_id is not None else 0)
    text = library_strips(TextSide(model.tokenizer, length, insert_id=prefix_id,
                                   lowercase=bool(getattr(model[0], "do_lower_case", False)),
                                   reference=lambda texts: model.tokenize(texts, is_query=False)))

    def reference(texts: list[str]) -> Vectors:
        out = model.encode(texts, is_query=False, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
        return [np.ascontiguousarray(e, dtype=np.float32) for e in out]

    return DocumentSide(text, [(m, {}) for m in list(model)[1:]], reference, skiplist=list(model.skiplist or []),
                        normalize=True, name="PyLate ColBERT documents")


def sentence_transformers_documents(model: Any) -> DocumentSide:
    """A sentence-transformers ``MultiVectorEncoder``'s document side, as ``encode_document`` runs it: the
    document prompt as text, truncation at the ``Transformer``'s ``document_length``, every module after it
    with ``task="document"`` where it takes one (``MultiVectorMask`` drops skiplist tokens)."""
    prompt = next((model.prompts[p] for p in ("document", "passage", "corpus") if p in model.prompts), None) or ""
    first = model[0]
    length = first.document_length or first.max_seq_length
    text = library_strips(TextSide(first.tokenizer, length, prompt=prompt,
                                   reference=lambda texts: model.preprocess(texts, prompt=prompt or None,
                                                                            task="document")))
    modules = [(m, {"task": "document"} if "task" in getattr(m, "forward_kwargs", ()) else {})
               for m in list(model)[1:]]

    def reference(texts: list[str]) -> Vectors:
        out = model.encode_document(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
        return [np.ascontiguousarray(e, dtype=np.float32) for e in out]

    return DocumentSide(text, modules, reference, name="sentence-transformers MultiVectorEncoder documents")


class PackedDocumentEncoder:
    """Packed ColBERT document embeddings of one model and :class:`DocumentSide` (checks as
    :class:`~embedkit.models.packed_encoding.PackedTextEncoder`: forward, token ids, and the final token
    vectors of a few documents against the library's own encoding)."""

    def __init__(self, model: Any, side: DocumentSide, *, max_tokens: int | None = None,
                 backend: AttentionKernel = "auto", strict: bool = False, compile: bool | None = None,
                 precision: Precision = "fp32", pipeline: HostPipeline | None = None):
        self.colbert, self.side, self.strict = model, side, strict
        self.backend, self.compile, self.precision = backend, compile, precision
        self.model = base_model(model[0].auto_model)
        if not is_modernbert(self.model):
            raise ValueError(f"packed documents need a ModernBERT backbone, got {type(self.model).__name__}")
        self.device = next(self.model.parameters()).device
        self.max_tokens = max_tokens or default_token_budget(self.device)
        self.pipeline = pipeline or HostPipeline.for_device(self.device)
        self._tokenize = side.text.tokenizer_fn()
        self._fallback = False
        self._checked: tuple | None = None
        self._forward: Any = None

    def submit(self, texts: list[str]) -> PackedJob:
        backend = resolve_kernel(self.device, next(self.model.parameters()).dtype, self.backend)
        return self.pipeline.submit(texts, self._tokenize, self.max_tokens, bucket=backend != "sdpa")

    def _vectors(self, job: PackedJob, forward: Any, total: int, progress: bool) -> Vectors:
        device = self.device
        skiplist = torch.tensor(list(self.side.skiplist), dtype=torch.long, device=device)
        vectors, keeps, rows, lengths = [], [], [], []
        # the projection's dtype (fp32 when only the transformer's weights were cast to bf16)
        cast = next((p.dtype for m, _ in self.side.modules for p in m.parameters() if p.is_floating_point()), None)
        for batch, input_ids, _, hidden in run_packed(self.model, job, forward, progress, "encode documents (packed)",
                                                      total):
            features = {"input_ids": input_ids[None], "attention_mask": torch.ones_like(input_ids)[None],
                        "token_embeddings": (hidden if cast is None else hidden.to(cast))[None]}  # (1, tokens, ...)
            for module, kwargs in self.side.modules:
                features = module(features, **kwargs)
            emb = features["token_embeddings"][0].float()  # (tokens, dim)
            vectors.append(F.normalize(emb, p=2, dim=-1) if self.side.normalize else emb)
            keep = features["attention_mask"][0].bool()  # (tokens,)
            keeps.append(keep & ~torch.isin(input_ids, skiplist) if len(skiplist) else keep)
            rows.append(batch.rows)
            lengths += batch.lengths
        flat = torch.cat(vectors).cpu().numpy()  # (all tokens, dim): one device->host copy
        keep = torch.cat(keeps).cpu().numpy()
        bounds = np.cumsum([0] + lengths)
        result: list[np.ndarray | None] = [None] * total
        for row, start, end in zip(np.concatenate(rows), bounds[:-1], bounds[1:]):
            result[row] = flat[start:end][keep[start:end]]
        return result

    def _ready(self, texts: list[str], autocast: Any) -> Any:
        if self._fallback:
            return None
        param = next(self.model.parameters())  # the weights may be cast to bf16 after a first fp32 call
        state = (str(param.device), str(param.dtype), self.precision, torch.is_autocast_enabled(self.device.type))
        if self._checked == state:
            return self._forward
        forward = checked_forward(self.model, self.backend, self.compile, self.strict, autocast)
        if forward is None:
            self._fallback = True
            return None
        sample = texts[:TOKEN_CHECK_TEXTS]
        self._tokenize = check_tokens(self.side.text, self._tokenize, sample, self.strict, what="documents")
        few = check_sample(sample, self._tokenize(sample))

        def reference() -> Vectors:
            with hf_forward(self.colbert), torch.autocast(self.device.type, enabled=False):
                return self.side.reference(few)

        def packed() -> Vectors:
            job = self.pipeline.submit(few, self._tokenize, self.max_tokens, bucket=forward.backend != "sdpa")
            return self._vectors(job, forward, len(few), False)

        with autocast:
            key = ("documents", self.side.name, self.side.text.prompt, self.side.text.max_length, self.side.text.insert_id)
            ok = embeddings_ok(self.model, key, reference, packed,
                               self.strict, self.side.name)
        if not ok:
            self._fallback = True
            return None
        self._checked, self._forward = state, forward
        return forward

    def encode(self, texts: list[str], job: PackedJob | None = None, show_progress_bar: bool = False) -> Vectors:
        """One ``(tokens_i, dim)`` float32 array per document, in the input order."""
        if not texts:
            return []
        autocast = compute_autocast(self.model, self.precision)
        forward = self._ready(texts, autocast)
        if forward is None:
            if job is not None:
                job.cancel()
            return self.side.reference(texts)
        if job is None or job.tokenize is not self._tokenize or (job.texts is not texts and job.texts != texts):
            if job is not None:
                job.cancel()
            job = self.pipeline.submit(texts, self._tokenize, self.max_tokens, bucket=forward.backend != "sdpa")
        with autocast:
            return self._vectors(job, forward, len(texts), show_progress_bar)


def encode_packed_documents(colbert_model: Any, texts: list[str], side: DocumentSide, *,
                            max_tokens_per_batch: int | None = None, show_progress_bar: bool = False,
                            backend: AttentionKernel = "auto", strict: bool = False, compile: bool | None = None,
                            precision: Precision = "fp32") -> Vectors:
    """ColBERT document embeddings, packed: what the library's own document encoding returns. ``side`` describes
    the library (:func:`pylate_documents`, :func:`sentence_transformers_documents`; the ColBERT library registry's
    ``document_side``).

    Returns:
        One ``(tokens_i, dim)`` float32 array per text, in the input order.
    """
    encoder = PackedDocumentEncoder(colbert_model, side, max_tokens=max_tokens_per_batch, backend=backend,
                                    strict=strict, compile=compile, precision=precision)
    try:
        return encoder.encode(texts, show_progress_bar=show_progress_bar)
    finally:
        encoder.pipeline.close()
