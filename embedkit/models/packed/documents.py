"""Packed ColBERT documents: whole token-budget batches, no padding, for any ColBERT library.

What differs between libraries is small and is described by a :class:`DocumentSide`, which the ColBERT
library registry builds for its library and passes in (nothing here decides which library a model comes
from):

- how a document is tokenised (:class:`~embedkit.models.packed.tokenizing.TextSide`: prompt text or an inserted
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

from embedkit.models.packed.base import PackedEncoder, TokenVectors, Vectors
from embedkit.models.packed.kernels import AUTO, KernelChoice
from embedkit.models.packed.tokenizing import TextSide, library_strips
from embedkit.models.precision import Precision

logger = logging.getLogger(__name__)


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


class PackedDocumentEncoder(PackedEncoder):
    """Packed ColBERT document embeddings of one model and :class:`DocumentSide`: the token vectors of every
    document (checks and fallback as every :class:`~embedkit.models.packed.base.PackedEncoder`: forward, token
    ids, and the final token vectors of a few documents against the library's own encoding).

    Args:
        **settings: :class:`~embedkit.models.packed.base.PackedEncoder`'s ``max_tokens``, ``kernel``, ``strict``,
            ``compile``, ``precision``, ``pipeline``.
    """

    def __init__(self, model: Any, side: DocumentSide, **settings: Any):
        self.colbert, self.documents = model, side
        key = ("documents", side.name, side.text.prompt, side.text.max_length, side.text.insert_id)
        super().__init__(model, side.text, name=side.name, check_key=key, noun="documents", **settings)
        self._skiplist = torch.tensor(list(side.skiplist), dtype=torch.long, device=self.device)
        # the projection's dtype (fp32 when only the transformer's weights were cast to bf16)
        self._cast = next((p.dtype for m, _ in side.modules for p in m.parameters() if p.is_floating_point()), None)

    def _reference(self, texts: list[str], show_progress_bar: bool = False) -> Vectors:
        return self.documents.reference(texts) if texts else []

    def _batch_output(self, input_ids: torch.Tensor, cu_seqlens: torch.Tensor, hidden: torch.Tensor) -> TokenVectors:
        hidden = hidden if self._cast is None else hidden.to(self._cast)
        features = {"input_ids": input_ids[None], "attention_mask": torch.ones_like(input_ids)[None],
                    "token_embeddings": hidden[None]}  # (1, tokens, ...)
        for module, kwargs in self.documents.modules:
            features = module(features, **kwargs)
        emb = features["token_embeddings"][0].float()  # (tokens, dim)
        keep = features["attention_mask"][0].bool()  # (tokens,)
        if len(self._skiplist):
            keep = keep & ~torch.isin(input_ids, self._skiplist)
        return TokenVectors(F.normalize(emb, p=2, dim=-1) if self.documents.normalize else emb, keep)


def encode_packed_documents(colbert_model: Any, texts: list[str], side: DocumentSide, *,
                            max_tokens_per_batch: int | None = None, show_progress_bar: bool = False,
                            kernel: KernelChoice = AUTO, strict: bool = False, compile: bool | None = None,
                            precision: Precision = "fp32") -> Vectors:
    """ColBERT document embeddings, packed: what the library's own document encoding returns. ``side`` describes
    the library (:func:`pylate_documents`, :func:`sentence_transformers_documents`; the ColBERT library registry's
    ``document_side``).

    Returns:
        One ``(tokens_i, dim)`` float32 array per text, in the input order.
    """
    encoder = PackedDocumentEncoder(colbert_model, side, max_tokens=max_tokens_per_batch, kernel=kernel,
                                    strict=strict, compile=compile, precision=precision)
    try:
        return encoder.encode(texts, show_progress_bar=show_progress_bar)
    finally:
        encoder.close()
