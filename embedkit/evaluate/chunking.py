"""Long documents, chunk-and-max-pool mode: index windows of a document, score it by its best window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from embedkit.data.corpus import Corpus
from embedkit.evaluate.metrics import Run

SEPARATOR = "\x1f"  # unit separator: cannot occur in a BEIR id read from JSON text in practice


def chunk_id(doc_id: str, number: int) -> str:
    return f"{doc_id}{SEPARATOR}{number}"


def base_id(chunk: str) -> str:
    return chunk.split(SEPARATOR, 1)[0]


class ChunkedCorpus(Corpus):
    """``corpus`` with every document cut into windows of at most ``max_tokens`` tokens.

    Cuts fall on token boundaries of ``tokenizer`` (character offsets), so each window is encoded whole.
    Documents that fit stay one window.
    """

    def __init__(self, corpus: Corpus, tokenizer: Any, max_tokens: int, stride: int | None = None):
        self.source = f"{corpus.source}#chunks{max_tokens}"
        self.subset, self.split = corpus.subset, corpus.split
        self.skip_empty, self.skipped_empty = corpus.skip_empty, 0
        self.titles, self.fingerprint = corpus.titles, None
        self._inner = corpus
        self._tokenizer = tokenizer
        self._size = max(8, max_tokens - 2)  # room for [CLS] and [SEP]
        self._stride = stride or self._size

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for doc_id, text in self._inner:
            offsets = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            if len(offsets) <= self._size:
                yield chunk_id(doc_id, 0), text
                continue
            for number, start in enumerate(range(0, len(offsets), self._stride)):
                window = offsets[start:start + self._size]
                yield chunk_id(doc_id, number), text[window[0][0]:window[-1][1]]
                if start + self._size >= len(offsets):
                    break


def max_pool(run: Run) -> Run:
    """A document's score is its best window's score."""
    pooled: Run = {}
    for qid, hits in run.items():
        best: dict[str, float] = {}
        for chunk, score in hits.items():
            doc = base_id(chunk)
            if score > best.get(doc, float("-inf")):
                best[doc] = score
        pooled[qid] = best
    return pooled
