"""Texts to token ids exactly as a library tokenises them, without padding, fast enough to feed a GPU.

A :class:`TextSide` says how one library prepares a text (prompt prefix, whitespace stripping, lowercasing,
truncation length, a marker token inserted after ``[CLS]``) and carries the library's own tokenisation as a
reference. :meth:`TextSide.tokenize` calls the Rust tokenizer directly (``encode_batch_fast`` on a private
copy set to truncate and not pad): the ``transformers`` wrapper converts every encoding in Python while
holding the GIL, so its throughput does not grow with threads, while the Rust call's does (see docs/measurements,
"CPU throughput"). :func:`check_tokens` compares both on real texts before the fast one is trusted.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

Reference = Callable[[list[str]], dict[str, Any]]  # texts -> the library's padded features (input_ids, attention_mask)


def real_token_ids(features: dict[str, Any]) -> list[list[int]]:
    """Each row's real token ids from padded ``input_ids`` / ``attention_mask`` (left or right padding)."""
    ids, mask = features["input_ids"], features["attention_mask"].bool()
    return [row[keep].tolist() for row, keep in zip(ids, mask)]


@dataclass(frozen=True)
class TextSide:
    """How a library turns texts into token ids (one sequence per text, special tokens included).

    Args:
        tokenizer: the ``transformers`` tokenizer of the model.
        max_length: truncation length in tokens, special tokens included, before ``insert_id``.
        prompt: text prepended to every input (sentence-transformers prompts, MultiVectorEncoder markers).
        strip: strip surrounding whitespace first (sentence-transformers before the 5.4 rewrite).
        lowercase: lowercase first (sentence-transformers ``do_lower_case``; idempotent where the tokenizer
            lowercases too).
        insert_id: a token inserted after the first one (PyLate's ``[D]``/``[Q]`` markers).
        reference: the library's own tokenisation, padded, for :func:`check_tokens`.
    """

    tokenizer: Any
    max_length: int | None
    prompt: str = ""
    strip: bool = False
    lowercase: bool = False
    insert_id: int | None = None
    reference: Reference | None = field(default=None, compare=False)

    def prepare(self, texts: Sequence[str]) -> list[str]:
        out = [self.prompt + str(t) for t in texts] if self.prompt else [str(t) for t in texts]
        if self.strip:
            out = [t.strip() for t in out]
        if self.lowercase:
            out = [t.lower() for t in out]
        return out

    def tokenizer_fn(self) -> Callable[[list[str]], list[list[int]]]:
        """A function texts -> token ids, safe to call from several threads at once."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        insert = self.insert_id
        if backend is None:  # a slow (Python) tokenizer: its own call, padded nowhere
            def slow(texts: list[str]) -> list[list[int]]:
                ids = self.tokenizer(self.prepare(texts), padding=False, truncation=self.max_length is not None,
                                     max_length=self.max_length, return_attention_mask=False,
                                     return_token_type_ids=False)["input_ids"]
                return ids if insert is None else [x[:1] + [insert] + x[1:] for x in ids]
            return slow
        backend = copy.deepcopy(backend)  # a private copy: the wrapper resets truncation/padding on every call
        backend.no_padding()
        if self.max_length is None:
            backend.no_truncation()
        else:
            backend.enable_truncation(self.max_length, stride=0, strategy="longest_first",
                                      direction=getattr(self.tokenizer, "truncation_side", "right"))
        encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch  # tokenizers >= 0.20

        def fast(texts: list[str]) -> list[list[int]]:
            ids = [e.ids for e in encode(self.prepare(texts), add_special_tokens=True)]
            return ids if insert is None else [x[:1] + [insert] + x[1:] for x in ids]

        return fast

    def reference_ids(self, texts: list[str]) -> list[list[int]]:
        if self.reference is None:
            raise ValueError("this TextSide has no reference tokenisation")
        return real_token_ids(self.reference(list(texts)))


def library_strips(side: TextSide) -> TextSide:
    """``side`` with ``strip`` set to what its library does, found by tokenising a padded probe both ways."""
    if side.reference is None:
        return side
    probe = ["  embedkit probe  "]
    expected = side.reference_ids(probe)
    for strip in (False, True):
        candidate = dataclasses.replace(side, strip=strip)
        if candidate.tokenizer_fn()(probe) == expected:
            return candidate
    return side  # neither matches: check_tokens reports it on real texts


def check_tokens(side: TextSide, tokenize: Callable[[list[str]], list[list[int]]], texts: list[str],
                 strict: bool, what: str = "texts") -> Callable[[list[str]], list[list[int]]]:
    """``tokenize`` if it gives the library's own token ids on ``texts``, else the library's tokenisation
    (a warning), or an :class:`EmbedkitError` with ``strict``."""
    if side.reference is None or not texts:
        return tokenize
    with torch.inference_mode():
        expected = side.reference_ids(texts)
    got = tokenize(texts)
    if got == expected:
        return tokenize
    bad = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b) if len(got) == len(expected) else 0
    message = (f"the packed path tokenises {what} differently from the model's library (first difference in "
               f"text {bad}: {len(got[bad]) if bad < len(got) else '-'} vs {len(expected[bad])} tokens)")
    if strict:
        raise EmbedkitError(message + "; set packed to auto (falls back) or off")
    logger.warning("%s; using the library's own tokenisation", message)
    return side.reference_ids

