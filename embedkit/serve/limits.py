"""What one request may ask for, resolved once from the flags and the served model and index, and the checks
every text passes before it joins a batch (so a bad text fails its own request, never a batch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from embedkit.config import ServeConfig
from embedkit.index.base import Searcher
from embedkit.serve.replies import ApiError

CHARS_PER_TOKEN = 10   # generous: English averages ~4 characters a token, indented code more (spaces are free)
REPLY_BYTES = 8 << 20  # the /search reply size the default max_hits aims at
HIT_BYTES = 80         # a hit without its text: id, score, JSON punctuation


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_texts: int
    max_chars: int
    max_k: int
    max_hits: int
    model_max_tokens: int | None  # what the served model reads of a text (None: no model)


def _mean_document_bytes(index: Searcher) -> float:
    store = index.store
    path = store.folder / "documents.jsonl"
    count = len(store.ids)
    try:
        return path.stat().st_size / count if count else 0.0
    except OSError:
        return 0.0


def resolve_limits(cfg: ServeConfig, index: Searcher, model_max_tokens: int | None) -> Limits:
    """The flags' values, with the model- and index-dependent defaults filled in."""
    max_chars = cfg.max_chars or CHARS_PER_TOKEN * (model_max_tokens or 1024)
    max_hits = cfg.max_hits or int(min(100_000, max(1_000, REPLY_BYTES // (HIT_BYTES + _mean_document_bytes(index)))))
    return Limits(max_body_bytes=cfg.max_body_bytes, max_texts=cfg.max_texts, max_chars=max_chars,
                  max_k=cfg.max_k, max_hits=max_hits, model_max_tokens=model_max_tokens)


def check_texts(texts: list[str], limits: Limits, field: str, allow_empty: bool = True) -> None:
    """Count, length and Unicode of a request's texts; the first problem is a 413 or 422 naming the text."""
    if len(texts) > limits.max_texts:
        raise ApiError(413, f"{field}: {len(texts)} texts; this server takes at most {limits.max_texts} per request "
                            "(--max-texts)")
    for i, text in enumerate(texts):
        where = f"{field}[{i}]" if len(texts) > 1 or field.endswith("s") else field
        if len(text) > limits.max_chars:
            reads = f"; the model reads only {limits.model_max_tokens} tokens" if limits.model_max_tokens else ""
            raise ApiError(413, f"{where}: {len(text)} characters; this server takes at most {limits.max_chars} "
                                f"per text (--max-chars){reads}")
        if not allow_empty and not text.strip():
            raise ApiError(422, f"{where}: must not be empty")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                # JSON "\ud800" escapes decode to lone surrogates, which no tokenizer accepts
                raise ApiError(422, f"{where}: not valid Unicode (a lone surrogate, U+{ord(text[exc.start]):04X}, "
                                    f"at character {exc.start})") from None


CHARS_PER_ESTIMATED_TOKEN = 4  # English prose and code average about 4 characters a token


def token_estimate(max_tokens: int | None) -> Callable[[str], int]:
    """The batcher's cost of a text: its estimated tokens, what the model reads of it at most (no tokenizer
    runs on the event loop; the rate the batcher measures is in the same estimated tokens, so only the
    estimate's proportions matter).

    >>> token_estimate(256)("x" * 40), token_estimate(256)("x" * 100_000)
    (12, 256)
    """
    cap = max_tokens or 8192

    def cost(text: str) -> int:
        return min(cap, len(text) // CHARS_PER_ESTIMATED_TOKEN + 2)

    return cost


def check_k(k: int, queries: int, limits: Limits) -> None:
    if not 1 <= k <= limits.max_k:
        shown = str(k) if abs(k) < 10**12 else f"a number of {len(str(abs(k)))} digits"  # never echoed whole
        raise ApiError(422, f"k: must be 1 to {limits.max_k} (--max-k), got {shown}")
    if queries * k > limits.max_hits:
        raise ApiError(422, f"{queries} queries × k={k} = {queries * k} hits; this server returns at most "
                            f"{limits.max_hits} per request (--max-hits): ask for fewer queries or a smaller k")
