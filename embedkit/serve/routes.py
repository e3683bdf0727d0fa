"""The HTTP routes. Each validates its request fully (schemas.py, limits.py), then waits for the model through
``ServeState.compute``, and writes its reply itself (JSON bytes, large ones serialised off the event loop)."""

from __future__ import annotations

import base64
import time
import uuid

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from embedkit.serve.limits import check_k, check_texts
from embedkit.serve.replies import ApiError, dumps, json_response, render
from embedkit.serve.schemas import EmbeddingsRequest, RerankRequest, SearchRequest
from embedkit.serve.state import ServeState
from embedkit.serve.work import RerankParams, SearchParams

router = APIRouter()

JSON_ROUTES = ("/search", "/v1/embeddings", "/rerank", "/v1/rerank")
ROUTES = JSON_ROUTES + ("/health", "/info", "/metrics", "/v1/models")


def _state(request: Request) -> ServeState:
    return request.app.state.embedkit


@router.get("/health", summary="Liveness (no API key needed)")
@router.head("/health", include_in_schema=False)
async def health(request: Request) -> Response:
    return json_response(dumps({"status": "ok", "num_documents": len(_state(request).index.store.ids)}))


@router.get("/info", summary="What is served: method, model, index, limits (no file paths)")
async def info(request: Request) -> Response:
    return json_response(dumps(_state(request).info))


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    body, content_type = _state(request).metrics.render()
    return Response(body, media_type=content_type)


@router.post("/search", summary="Search the index: one query or many")
async def search(body: SearchRequest, request: Request) -> Response:
    st = _state(request)
    start = time.perf_counter()
    texts = body.texts
    check_texts(texts, st.limits, "query" if body.query is not None else "queries", allow_empty=False)
    check_k(body.k, len(texts), st.limits)
    results = await st.compute("search", texts, SearchParams(body.k, body.with_text), request.receive)
    payload = {"method": st.method, "k": body.k,
               "results": [{"query": q, "hits": hits} for q, hits in zip(texts, results)],
               "took_ms": round((time.perf_counter() - start) * 1000, 3)}
    return json_response(await render(payload, sum(len(h) for h in results)))


@router.get("/v1/models", summary="OpenAI-compatible list of the served model")
async def models(request: Request) -> Response:
    return json_response(dumps({"object": "list", "data": [_model_card(_state(request))]}))


@router.get("/v1/models/{model_id:path}", summary="OpenAI-compatible model lookup")
async def model(model_id: str, request: Request) -> Response:
    st = _state(request)
    st.check_model(model_id)
    return json_response(dumps(_model_card(st)))


def _model_card(st: ServeState) -> dict:
    return {"id": st.model.name, "object": "model", "created": st.created, "owned_by": "embedkit"}


@router.post("/v1/embeddings", summary="OpenAI-compatible embeddings (dense models)")
async def embeddings(body: EmbeddingsRequest, request: Request) -> Response:
    st = _state(request)
    st.check_model(body.model)
    if st.model.entry.term_weights:
        raise ApiError(400, "the served model is a sparse (SPLADE) model: it weighs vocabulary terms, it has no "
                            "dense OpenAI-style embedding; use POST /embed_sparse (text-embeddings-inference's "
                            "shape) for its sparse vectors")
    if not st.model.entry.vector_per_text:
        raise ApiError(400, "the served model is a ColBERT (multi-vector) model: it gives one vector per token, not "
                            "one per text, so it has no OpenAI-style embedding; use POST /search, or POST /rerank "
                            "(MaxSim)" if st.model.entry.multi_vector else
                       f"this server's index is {st.model.entry.family}: it has no model to embed with")
    texts = body.texts
    check_texts(texts, st.limits, "input" if isinstance(body.input, str) else "inputs")
    if body.dimensions is not None and body.dimensions > (st.model.dim or 0):
        raise ApiError(422, f"dimensions: the model's embeddings have {st.model.dim}, got {body.dimensions}")
    results = await st.compute("embed", texts, body.input_type, request.receive, key=body.input_type)
    vectors = np.stack([v for v, _ in results])  # (inputs, dim)
    if body.dimensions is not None:
        vectors = vectors[:, :body.dimensions]  # (inputs, dimensions)
        if getattr(st.model.encoder, "normalize", False):
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    if body.encoding_format == "base64":
        encoded = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
    else:
        encoded = vectors.tolist()
    tokens = int(sum(n for _, n in results))
    payload = {"object": "list", "model": st.model.name,
               "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)],
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return json_response(await render(payload, vectors.size if body.encoding_format == "float" else 0))


@router.post("/rerank", summary="Score documents against a query (Infinity / Cohere request shape)")
@router.post("/v1/rerank", include_in_schema=False)
async def rerank(body: RerankRequest, request: Request) -> Response:
    st = _state(request)
    st.check_model(body.model)
    if "rerank" not in st.batcher.works:
        raise ApiError(400, "this server has no model to rerank with (a BM25 index and no --rerank)")
    texts = body.texts
    check_texts([body.query], st.limits, "query", allow_empty=False)
    check_texts(texts, st.limits, "documents")
    scored = await st.compute("rerank", texts, RerankParams(body.query), request.receive)
    order = sorted(range(len(texts)), key=lambda i: -scored[i][0])[:body.top_n or len(texts)]
    results = [{"index": i, "relevance_score": scored[i][0]} | ({"document": texts[i]} if body.return_documents
                                                                 else {}) for i in order]
    tokens = int(sum(n for _, n in scored))
    payload = {"object": "rerank", "model": st.model.name, "results": results,
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
               "id": f"embedkit-{uuid.uuid4().hex}", "created": int(time.time())}
    return json_response(await render(payload, len(results)))
