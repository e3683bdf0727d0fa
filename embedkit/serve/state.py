"""What the routes share: the index, its model, the limits, the batcher, the metrics; and the one way a route
waits for the model (bounded in time, dropped when its client goes away)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from embedkit.config import ServeConfig
from embedkit.errors import EmbedkitError
from embedkit.index.base import Searcher
from embedkit.serve.batcher import Busy, MicroBatcher, TooLarge
from embedkit.serve.limits import Limits
from embedkit.serve.observe import Metrics
from embedkit.serve.replies import ApiError, Receive
from embedkit.serve.work import ServedModel

logger = logging.getLogger(__name__)

CLIENT_GONE = 499  # nginx's "client closed request": what the access log and metrics record


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone away (the body is already read, so only a disconnect arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass
class ServeState:
    index: Searcher            # what /search searches: an index, fused or reranked
    model: ServedModel
    limits: Limits
    batcher: MicroBatcher
    metrics: Metrics
    config: ServeConfig
    method: str
    scorer_name: str
    info: dict[str, Any] = field(default_factory=dict)
    created: int = 0

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested != self.model.name:
            raise ApiError(404, f"model {requested!r} is not served here; this server serves {self.model.name!r} "
                                "(GET /v1/models)")

    async def compute(self, work: str, texts: list[str], params: Any, receive: Receive, key: Any = None) -> list:
        """Queue ``texts`` and wait for their results: 503 when the queue is full or the time-out passes, and
        the work dropped when the client disconnects first."""
        try:
            job = self.batcher.submit(work, texts, params, key)
        except Busy as exc:
            self.metrics.rejected.labels("queue_full").inc()
            raise ApiError(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None
        except TooLarge as exc:
            self.metrics.rejected.labels("too_large").inc()
            raise ApiError(413, str(exc)) from None
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({job.future, watcher}, timeout=self.config.request_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if job.future.done() and not job.future.cancelled():
            exc = job.future.exception()
            if exc is None:
                return job.future.result()
            raise _as_api_error(exc, work)
        self.batcher.cancel(job)
        if watcher in done:
            self.metrics.rejected.labels("client_gone").inc()
            raise ApiError(CLIENT_GONE, "the client went away; its work was dropped")
        self.metrics.rejected.labels("timeout").inc()
        raise ApiError(503, f"no reply within {self.config.request_timeout:g} s (--request-timeout): the server is "
                            "busy; the request's remaining work was dropped",
                       {"Retry-After": str(self.batcher.retry_after())})


def _as_api_error(exc: BaseException, work: str) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, EmbedkitError):
        return ApiError(400, str(exc))
    logger.error("a %s request failed in the model: %s: %s", work, type(exc).__name__, exc, exc_info=exc)
    return ApiError(500, "the model failed on this request (the reason is in the server's log); other requests "
                         "are not affected")
