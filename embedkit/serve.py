"""``embedkit serve``: an HTTP search API (FastAPI + uvicorn) over an index, its model loaded once.

``POST /search`` takes one query or many and ``k``; concurrent requests are micro-batched: one worker
takes every request queued within ``max_wait_ms`` (up to ``max_batch`` queries) and runs them as one
search, so the encoder sees batches, and searches never run concurrently on the index. The server has
no endpoint that writes: the index is read-only while served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from embedkit.errors import EmbedkitError
from embedkit.index.base import Hit, Index

logger = logging.getLogger(__name__)

MAX_K = 1000
MAX_QUERIES = 256  # per request


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str | None = Field(None, description="One query (or use 'queries').")
    queries: list[str] | None = Field(None, description=f"Up to {MAX_QUERIES} queries.")
    k: int = Field(10, ge=1, le=MAX_K, description="Hits per query.")
    with_text: bool = Field(True, description="Include each hit's document text.")

    @model_validator(mode="after")
    def _one_of(self) -> "SearchRequest":
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' (a string) or 'queries' (a list of strings)")
        texts = [self.query] if self.query is not None else self.queries
        if not texts:
            raise ValueError("'queries' is empty")
        if len(texts) > MAX_QUERIES:
            raise ValueError(f"at most {MAX_QUERIES} queries per request, got {len(texts)}")
        if any(not t.strip() for t in texts):
            raise ValueError("queries must not be empty strings")
        return self


@dataclass
class _Pending:
    queries: list[str]
    k: int
    with_text: bool
    future: asyncio.Future


class MicroBatcher:
    """Collects concurrent searches and runs them together in one worker thread."""

    def __init__(self, index: Index, max_batch: int = 64, max_wait_ms: float = 2.0):
        self.index = index
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.batches = 0

    async def search(self, queries: list[str], k: int, with_text: bool) -> list[list[Hit]]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(queries, k, with_text, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            await asyncio.sleep(self.max_wait)  # let concurrent requests join this batch
            while not self.queue.empty() and sum(len(p.queries) for p in batch) < self.max_batch:
                batch.append(self.queue.get_nowait())
            try:
                results = await asyncio.to_thread(self._search, batch)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for p in batch:
                    if not p.future.done():  # a client that went away cancelled its future
                        p.future.set_exception(exc)
                continue
            for p, hits in zip(batch, results):
                if not p.future.done():
                    p.future.set_result(hits)

    def _search(self, batch: list[_Pending]) -> list[list[list[Hit]]]:
        """One search of every query in ``batch`` at the largest k; each request keeps its own k."""
        self.batches += 1
        queries = [q for p in batch for q in p.queries]
        scores, positions = self.index.search_positions(queries, max(p.k for p in batch))
        ids, store = self.index.store.ids, self.index.store
        out, row = [], 0
        for p in batch:
            per_request = []
            for _ in p.queries:
                per_request.append([Hit(ids[pos], float(s), store.text(int(pos)) if p.with_text else None)
                                    for s, pos in zip(scores[row][:p.k], positions[row][:p.k]) if pos >= 0])
                row += 1
            out.append(per_request)
        return out


def create_app(index: Index, index_dir: str | Path | None = None, max_batch: int = 64, max_wait_ms: float = 2.0):
    """The FastAPI application serving ``index`` (any Index: one index, fused, or reranked)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from embedkit.retrieve.retriever import describe, method_name

    batcher = MicroBatcher(index, max_batch=max_batch, max_wait_ms=max_wait_ms)

    @asynccontextmanager
    async def lifespan(app):
        worker = asyncio.create_task(batcher.run())
        yield
        worker.cancel()

    app = FastAPI(title="embedkit search", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        return JSONResponse(status_code=422, content={"error": "; ".join(problems)})

    @app.exception_handler(EmbedkitError)
    async def _user_error(request: Request, exc: EmbedkitError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": str(exc)})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "num_documents": len(index.store.ids)}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {"method": method_name(index), "retriever": describe(index), "model": index.manifest.model,
                "index_dir": str(index_dir) if index_dir else None, "manifest": asdict(index.manifest),
                "max_k": MAX_K, "max_queries": MAX_QUERIES,
                "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms}}

    @app.post("/search")
    async def search(request: SearchRequest) -> dict[str, Any]:
        start = time.perf_counter()
        texts = [request.query] if request.query is not None else list(request.queries or [])
        results = await batcher.search(texts, request.k, request.with_text)
        return {"method": method_name(index), "k": request.k,
                "results": [{"query": q, "hits": [asdict(h) if request.with_text else {"id": h.id, "score": h.score}
                                                  for h in hits]} for q, hits in zip(texts, results)],
                "took_ms": round((time.perf_counter() - start) * 1000, 3)}

    return app


def serve(index: Index, index_dir: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000,
          max_batch: int = 64, max_wait_ms: float = 2.0) -> None:
    """Serve ``index`` until interrupted (Ctrl-C)."""
    import uvicorn

    app = create_app(index, index_dir, max_batch=max_batch, max_wait_ms=max_wait_ms)
    logger.info("serving %s on http://%s:%d", index_dir, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
