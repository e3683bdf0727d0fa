"""The FastAPI application: routes, the one error shape for every 4xx/5xx, the guards, metrics and the
batching worker's lifetime."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from embedkit.config import ServeConfig
from embedkit.data.corpus import looks_like_hub_id
from embedkit.errors import EmbedkitError
from embedkit.index.base import Searcher
from embedkit.serve.batcher import MicroBatcher
from embedkit.serve.guards import ApiKeyGuard, BodyGuard, HostGuard, JsonErrors, accepted_hosts
from embedkit.serve.limits import resolve_limits, token_estimate
from embedkit.serve.observe import Metrics, Observe
from embedkit.serve.replies import ApiError, error_response
from embedkit.serve.routes import JSON_ROUTES, ROUTES, router
from embedkit.serve.sparse import ROUTES as SPARSE_ROUTES
from embedkit.serve.sparse import SparseEmbedWork
from embedkit.serve.sparse import router as sparse_router
from embedkit.serve.state import ServeState
from embedkit.serve.work import EmbedWork, RerankWork, SearchWork, choose_scorer, served_model

logger = logging.getLogger("embedkit.serve")


def _is_path(value: str) -> bool:
    """A file-system path, absolute or relative (``runs/model``, ``./data``, ``C:\\x``), as opposed to a name or a
    Hugging Face id (``owner/name``, which no local path shadows)."""
    if value.startswith(("/", "~", "file:", "./", "../", ".\\", "..\\")) or "\\" in value:
        return True
    if len(value) > 2 and value[1] == ":" and value[2] in "\\/":
        return True
    if "/" not in value:
        return False
    return not looks_like_hub_id(value) or Path(value).exists()


def _without_paths(value: Any) -> Any:
    """Paths (model, index, corpus folders and files; absolute or relative) reduced to their last part: /info
    shows names only, nothing of the server's file system."""
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_paths(v) for v in value]
    if isinstance(value, str) and _is_path(value):
        return Path(value.removeprefix("file:").replace("\\", "/")).name
    return value


def _info(st: ServeState, cfg: ServeConfig) -> dict[str, Any]:
    return _without_paths({
        "method": st.method, "retriever": st.index.description(), "model": st.model.name, "kind": st.model.kind,
        "embedding_dim": st.model.dim, "rerank_scorer": st.scorer_name,
        "manifest": asdict(st.index.searched_index.manifest), "limits": asdict(st.limits),
        "batching": {"max_batch": cfg.max_batch, "max_wait_ms": cfg.max_wait_ms, "max_queue": cfg.max_queue,
                     "request_timeout": cfg.request_timeout},
        "threads": cfg.threads, "auth": cfg.api_key is not None}) | {
        # paths of this API
        "routes": sorted(ROUTES + SPARSE_ROUTES + (("/docs", "/redoc", "/openapi.json") if cfg.docs else ()))}


def create_app(index: Searcher, config: ServeConfig | None = None) -> FastAPI:
    """The application serving ``index`` (one index, fused, or reranked) with ``config``'s limits and guards.
    The worker thread starts with the app's lifespan (uvicorn runs it)."""
    from embedkit.retrieve.retriever import method_name

    cfg = config or ServeConfig()
    model = served_model(index, cfg.served_model_name)
    limits = resolve_limits(cfg, index, model.max_tokens)
    scorer, scorer_name = choose_scorer(index, model)
    works: dict[str, Any] = {"search": SearchWork(index)}
    if model.entry.vector_per_text:
        works["embed"] = EmbedWork(model)
    if scorer is not None:
        works["rerank"] = RerankWork(scorer, model)
    if model.entry.term_weights:
        works["embed_sparse"] = SparseEmbedWork(model)
    batcher = MicroBatcher(works, cfg.max_batch, cfg.max_wait_ms, cfg.max_queue, slice_seconds=cfg.slice_ms / 1000,
                           deadline=cfg.request_timeout, cost=token_estimate(model.max_tokens))
    metrics = Metrics(lambda: batcher.queued)
    batcher.on_batch = metrics.on_batch
    state = ServeState(index, model, limits, batcher, metrics, cfg, method_name(index), scorer_name,
                       created=int(time.time()))
    state.info = _info(state, cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = asyncio.create_task(batcher.run())
        try:
            yield
        finally:
            worker.cancel()
            batcher.close()

    app = FastAPI(title="embedkit", lifespan=lifespan, docs_url="/docs" if cfg.docs else None,
                  redoc_url="/redoc" if cfg.docs else None, openapi_url="/openapi.json" if cfg.docs else None)
    app.state.embedkit = state
    app.state.batcher = batcher
    app.include_router(router)
    app.include_router(sparse_router)
    _error_handlers(app)
    # added innermost first: Observe sees everything, the body is read last (after Host and key checks)
    app.add_middleware(BodyGuard, max_bytes=limits.max_body_bytes, timeout=cfg.request_timeout,
                       json_paths=JSON_ROUTES + SPARSE_ROUTES)
    if cfg.api_key is not None:
        app.add_middleware(ApiKeyGuard, key=cfg.api_key)
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"], max_age=600)
    app.add_middleware(HostGuard, hosts=accepted_hosts(cfg.host, cfg.allowed_hosts))
    app.add_middleware(JsonErrors)  # a refusal below (CORS's plain text) still in the one error shape
    app.add_middleware(Observe, metrics=metrics, routes=ROUTES + SPARSE_ROUTES, access_log=cfg.access_log)
    return app


def _parse_failure(cause: BaseException) -> str:
    if isinstance(cause, RecursionError):
        return "the body is not usable JSON: it nests too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not valid UTF-8 JSON (byte {cause.start}); send it uncompressed, as UTF-8"
    return "the body is not valid JSON"


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "json_invalid":
                message = f"the body is not valid JSON ({err.get('ctx', {}).get('error', message)})"
                where = ""
            problems.append(f"{where}: {message}" if where else message)
        return error_response(422, "; ".join(dict.fromkeys(problems)))

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        cause = exc.__cause__  # FastAPI's body parsing: every failure but a JSON syntax error is a bare 400
        if exc.status_code == 400 and isinstance(cause, (ValueError, RecursionError)):
            return error_response(422, _parse_failure(cause))
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(EmbedkitError)
    async def _user_error(request: Request, exc: EmbedkitError):
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc, exc_info=exc)
        return error_response(500, "the server failed on this request; the reason is in the server's log")
