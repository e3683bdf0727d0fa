"""Sparse (SPLADE) models over HTTP: ``POST /embed_sparse`` in text-embeddings-inference's shape (``inputs``, an
optional ``prompt_name``; the reply is one ``[{"index", "value"}]`` list a text, every active term), with the
term strings when ``return_text`` is true (embedkit's addition: TEI's sparse route has no such field), and the
served model's own sparse dot product as the /rerank scorer."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from embedkit.serve.limits import check_texts
from embedkit.serve.replies import ApiError, json_response, render
from embedkit.serve.schemas import STRICT, as_texts, not_empty

router = APIRouter()
ROUTES = ("/embed_sparse",)


class EmbedSparseRequest(BaseModel):
    model_config = STRICT
    inputs: str | list[str] = Field(description="A text or a list of texts.")
    prompt_name: Literal["query", "document"] | None = Field(
        None, description="Encode as queries or as documents (inference-free models weigh queries without the "
                          "model); default: as documents, like the index.")
    truncate: bool | None = Field(None, description="Accepted for TEI compatibility: texts are always cut at the "
                                                    "model's length.")
    truncation_direction: Literal["right", "Right"] = Field("right", description="Only right truncation.")
    return_text: bool = Field(False, description="Add each term's string (\"text\") beside its index.")

    @field_validator("inputs")
    @classmethod
    def _some(cls, value: Any) -> Any:
        return not_empty(value)

    @property
    def texts(self) -> list[str]:
        return as_texts(self.inputs)


class SparseEmbedWork:
    """CSR rows of the served sparse encoder, as (term ids, weights) per text; batched by prompt name."""

    def __init__(self, model: Any):
        self.model = model

    def run(self, pieces: list[Any]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        texts = [t for p in pieces for t in p.texts]
        encoder = self.model.encoder
        rows = encoder.encode_queries(texts) if pieces[0].params == "query" else encoder.encode_documents(texts)
        rows = rows.tocsr()
        out, start = [], 0
        for p in pieces:
            n = p.stop - p.start
            out.append([(rows.indices[rows.indptr[i]:rows.indptr[i + 1]], rows.data[rows.indptr[i]:rows.indptr[i + 1]])
                        for i in range(start, start + n)])
            start += n
        return out


def sparse_scorer(encoder: Any) -> Any:
    """Dot products of a query's and the documents' sparse vectors: the sparse index's own score."""

    def score(queries: list[str], documents: list[list[str]]) -> list[np.ndarray]:
        unique = list(dict.fromkeys(queries))
        q = encoder.encode_queries(unique).tocsr()  # (unique queries, vocabulary)
        d = encoder.encode_documents([t for docs in documents for t in docs]).tocsr()  # (all documents, vocabulary)
        out, start = [], 0
        for query, docs in zip(queries, documents):
            row = q[unique.index(query)]
            out.append(np.asarray((d[start:start + len(docs)] @ row.T).toarray()).ravel().astype(np.float32))
            start += len(docs)
        return out

    return score


@router.post("/embed_sparse", summary="Sparse vectors in text-embeddings-inference's shape (sparse models)")
async def embed_sparse(body: EmbedSparseRequest, request: Request) -> Response:
    st = request.app.state.embedkit
    if "embed_sparse" not in st.batcher.works:
        raise ApiError(400, f"the served model is not a sparse model ({st.model.kind}): /embed_sparse gives SPLADE "
                            "term weights; use POST /v1/embeddings for dense vectors")
    texts = body.texts
    check_texts(texts, st.limits, "inputs" if isinstance(body.inputs, list) else "input")
    results = await st.compute("embed_sparse", texts, body.prompt_name, request.receive, key=body.prompt_name)
    payload = []
    for ids, values in results:
        entries = [{"index": int(i), "value": float(v)} for i, v in zip(ids, values)]
        if body.return_text:
            for entry, term in zip(entries, st.model.encoder.terms(ids)):
                entry["text"] = term
        payload.append(entries)
    return json_response(await render(payload, sum(len(ids) for ids, _ in results)))
