"""What the server reports about itself: Prometheus metrics (``GET /metrics``, prometheus-client) and one
access-log line per request (logger ``embedkit.serve.access``, info level, stderr under the CLI)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection

from embedkit.serve.replies import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("embedkit.serve.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """One registry per app (several apps in one process, as in the tests, do not share counters)."""

    def __init__(self, queue_depth: Callable[[], float]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("embedkit_requests", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("embedkit_request_duration_seconds", "Time from request to reply, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_progress = Gauge("embedkit_requests_in_progress", "Requests being answered.", registry=r)
        self.batch_texts = Histogram("embedkit_batch_texts", "Texts computed in one model call, by work.",
                                     ["work"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("embedkit_batch_duration_seconds", "Time of one model call, by work.",
                                       ["work"], buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("embedkit_dropped_requests", "Requests refused or dropped for load: "
                                "queue_full, too_large, timeout, client_gone.", ["reason"], registry=r)
        depth = Gauge("embedkit_queue_texts", "Texts waiting for the model.", registry=r)
        depth.set_function(queue_depth)

    def on_batch(self, work: str, texts: int, seconds: float) -> None:
        self.batch_texts.labels(work).observe(texts)
        self.batch_seconds.labels(work).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Observe:
    """Outermost middleware: counts, times and logs every request, whoever answered it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Collection[str], access_log: bool = True):
        self.app, self.metrics, self.access_log = app, metrics, access_log
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, size = 500, 0

        async def observed_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.metrics.in_progress.dec()
            seconds = time.perf_counter() - start
            path = scope["path"]
            route = path if path in self.routes else "other"  # arbitrary paths would grow the label set
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(seconds)
            if self.access_log and access_logger.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                shown = json.dumps(path[:200])[1:-1]  # control characters escaped: one request, one line
                access_logger.info('%s:%s "%s %s" %d %.1f ms %d B', client[0], client[1], scope["method"], shown,
                                   status, seconds * 1000, size)
