"""What the model thread computes for each route, on pieces of several requests at once (see batcher.py):
search hits, embeddings with their token counts, and rerank scores. Nothing here touches HTTP."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedkit.index.base import Searcher
from embedkit.index.registry import LEXICAL, EncoderKind, kind_entry
from embedkit.models.encoder import Encoder
from embedkit.serve.batcher import Piece

if TYPE_CHECKING:
    from embedkit.retrieve.rerank import Reranker


@dataclass
class ServedModel:
    """The model of the searched index, as the other routes use it."""

    kind: str                  # a name of embedkit.index.registry.KINDS
    name: str                  # what /v1/models lists and clients send as "model"
    encoder: Encoder | None    # None: no model (lexical)
    max_tokens: int | None     # what it reads of a text
    dim: int | None

    @property
    def entry(self) -> EncoderKind:
        return kind_entry(self.kind)

    @property
    def tokenizer(self) -> Any:
        return getattr(self.encoder.model, "tokenizer", None) if self.encoder is not None else None


def _max_tokens(model: Any) -> int | None:
    lengths = [getattr(model, a, None) for a in ("max_seq_length", "document_length", "query_length")]
    lengths = [int(n) for n in lengths if isinstance(n, int) and n > 0]
    return max(lengths) if lengths else None


def served_model(searcher: Searcher, name: str | None = None) -> ServedModel:
    """The model of ``searcher``'s searched index (the one under fusion and reranking)."""
    searched = searcher.searched_index
    manifest = searched.manifest
    if not name:  # what eval and report call it: a hub id as is, a folder by its name or its card's title
        from embedkit.evaluate.settings import model_name

        name = model_name(manifest.model)
    encoder = searched.encoder
    if not kind_entry(manifest.kind).needs_model or encoder is None:
        return ServedModel(LEXICAL, name, None, None, None)
    return ServedModel(manifest.kind, name, encoder, _max_tokens(encoder.model), int(encoder.dim))


def count_tokens(model: ServedModel, texts: list[str], prompt: str = "") -> list[int]:
    """Tokens the model reads of each text (special tokens included, cut at its length): the ``usage``."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        return [len(t.split()) for t in texts]
    ids = tokenizer([prompt + t for t in texts], add_special_tokens=True, truncation=model.max_tokens is not None,
                    max_length=model.max_tokens, return_attention_mask=False)["input_ids"]
    return [len(row) for row in ids]


# ---------------------------------------------------------------------------------------------- search

@dataclass
class SearchParams:
    k: int
    with_text: bool


class SearchWork:
    """One search of every query of the batch at the largest k; each request keeps its own k."""

    def __init__(self, searcher: Searcher):
        self.searcher = searcher

    def run(self, pieces: list[Piece]) -> list[list[list[dict[str, Any]]]]:
        queries = [q for p in pieces for q in p.texts]
        scores, positions = self.searcher.search_positions(queries, max(p.params.k for p in pieces))  # (n, k) each
        ids, store = self.searcher.store.ids, self.searcher.store
        out, row = [], 0
        for p in pieces:
            per_query = []
            for _ in range(p.stop - p.start):
                hits = []
                for s, pos in zip(scores[row][:p.params.k], positions[row][:p.params.k]):
                    if pos < 0:
                        continue
                    hit = {"id": ids[int(pos)], "score": float(s) if math.isfinite(s) else None}
                    if p.params.with_text:
                        hit["text"] = store.text(int(pos))
                    hits.append(hit)
                per_query.append(hits)
                row += 1
            out.append(per_query)
        return out


# ---------------------------------------------------------------------------------------------- embeddings

class EmbedWork:
    """Dense vectors with the index's own encoder (same prompts, length and truncation as the index); the
    batch key is the input type, so a batch shares one prompt."""

    def __init__(self, model: ServedModel):
        self.model = model

    def run(self, pieces: list[Piece]) -> list[list[tuple[np.ndarray, int]]]:
        texts = [t for p in pieces for t in p.texts]
        input_type = pieces[0].params
        encoder = self.model.encoder
        assert encoder is not None  # only a served model with an encoder (dense) embeds
        vectors = encoder.encode_queries(texts) if input_type == "query" else encoder.encode_documents(texts)
        vectors = np.asarray(vectors, dtype=np.float32)  # (n, dim)
        prompts = getattr(encoder.model, "prompts", None) or {}
        tokens = count_tokens(self.model, texts, prompts.get(input_type or "document", ""))
        out, start = [], 0
        for p in pieces:
            n = p.stop - p.start
            out.append(list(zip(vectors[start:start + n], tokens[start:start + n])))
            start += n
        return out


# ---------------------------------------------------------------------------------------------- rerank

Scorer = Callable[[list[str], list[list[str]]], list[np.ndarray]]


class _Texts:
    """A request's documents as a document store (what a Reranker reads candidate texts from)."""

    def __init__(self, texts: list[str]):
        self.texts = texts

    def text(self, position: int) -> str:
        return self.texts[int(position)]


def reranker_scorer(reranker: Reranker) -> Scorer:
    """Scores from an embedkit Reranker (retrieve/rerank.py) over texts sent in the request."""
    reranker = reranker.for_texts()  # stored token vectors belong to the index's documents, not the request's

    def score(queries: list[str], documents: list[list[str]]) -> list[np.ndarray]:
        flat = [d for docs in documents for d in docs]
        bounds = np.cumsum([0] + [len(docs) for docs in documents])
        candidates = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        return [np.asarray(s, dtype=np.float32) for s in reranker.score(queries, candidates, _Texts(flat))]

    return score


def dense_scorer(encoder: Encoder) -> Scorer:
    """Inner product of query and document vectors: the index's own score (cosine for normalised models)."""

    def score(queries: list[str], documents: list[list[str]]) -> list[np.ndarray]:
        unique = list(dict.fromkeys(queries))
        query_vectors = np.asarray(encoder.encode_queries(unique), dtype=np.float32)  # (unique queries, dim)
        doc_vectors = np.asarray(encoder.encode_documents([d for docs in documents for d in docs]),
                                 dtype=np.float32)  # (all documents, dim)
        out, start = [], 0
        for query, docs in zip(queries, documents):
            out.append(doc_vectors[start:start + len(docs)] @ query_vectors[unique.index(query)])
            start += len(docs)
        return out

    return score


def choose_scorer(searcher: Searcher, model: ServedModel) -> tuple[Scorer | None, str]:
    """The configured reranker, else the served model itself (dense: cosine / inner product; ColBERT: MaxSim)."""
    from embedkit.retrieve.retriever import configured_reranker

    reranker = configured_reranker(searcher)
    if reranker is not None:
        return reranker_scorer(reranker), f"{reranker.name} (the configured reranker)"
    if model.entry.vector_per_text:
        return dense_scorer(model.encoder), f"{model.kind} inner product (the served model)"
    if model.entry.term_weights:
        from embedkit.serve.sparse import sparse_scorer

        return sparse_scorer(model.encoder), f"{model.kind} dot product (the served model)"
    if model.entry.multi_vector:
        from embedkit.retrieve.rerank import ColbertReranker

        return reranker_scorer(ColbertReranker(model.encoder, None)), f"{model.kind} MaxSim (the served model)"
    return None, f"none (a {model.entry.family} index has no model)"


@dataclass
class RerankParams:
    query: str


class RerankWork:
    def __init__(self, scorer: Scorer, model: ServedModel):
        self.scorer = scorer
        self.model = model

    def run(self, pieces: list[Piece]) -> list[Sequence[tuple[float, int]]]:
        documents = [p.texts for p in pieces]
        queries = [p.params.query for p in pieces]
        scores = self.scorer(queries, documents)
        tokens = count_tokens(self.model, [d for docs in documents for d in docs])
        query_tokens = count_tokens(self.model, queries)
        out, start = [], 0
        for piece, piece_scores, docs, q_tokens in zip(pieces, scores, documents, query_tokens):
            counts = tokens[start:start + len(docs)]
            if piece.start == 0:  # a request's query counts once, with its first document
                counts[0] += q_tokens
            out.append([(float(s), n) for s, n in zip(piece_scores, counts)])
            start += len(docs)
        return out
