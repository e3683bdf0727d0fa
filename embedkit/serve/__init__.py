"""``embedkit serve``: an index and its model behind HTTP, safe to expose.

``POST /search`` (the same retrieve path as eval), OpenAI-compatible ``POST /v1/embeddings`` and
``GET /v1/models``, ``POST /rerank`` (Infinity / Cohere shape), ``GET /metrics`` (Prometheus), ``GET|HEAD
/health``, ``GET /info``. Concurrent requests are micro-batched onto one model thread (batcher.py), each
request validated and bounded before it joins a batch (limits.py, guards.py) and isolated inside it.

Modules: ``app`` (wiring), ``routes``, ``schemas``, ``limits``, ``guards`` (Host, API key, body), ``batcher``,
``work`` (what the model thread computes), ``state``, ``observe`` (metrics, access log), ``replies`` (the one
error shape), ``startup`` (extras, port, threads, then the model). FastAPI is imported only by ``app`` and
``routes``, so ``startup`` can say which extra is missing.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from embedkit.serve.app import create_app

        return create_app
    if name in ("serve", "run_server"):
        from embedkit.serve import startup

        return getattr(startup, name)
    raise AttributeError(name)
