"""The one error shape (``{"error": "..."}``) and JSON replies, for routes and for the ASGI guards alike."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Replies larger than this many numbers or hits are serialised in a thread, not on the event loop.
OFFLOAD_ITEMS = 20_000


class ApiError(Exception):
    """A request answered with ``status`` and ``{"error": message}``, before or instead of any work."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def dumps(payload: Any) -> bytes:
    # ensure_ascii keeps the reply valid even if a text held a character JSON cannot carry raw
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


async def render(payload: Any, items: int) -> bytes:
    """``payload`` as JSON bytes; off the event loop when it holds more than ``OFFLOAD_ITEMS`` items."""
    if items > OFFLOAD_ITEMS:
        return await asyncio.to_thread(dumps, payload)
    return dumps(payload)


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None):
    from starlette.responses import Response

    return Response(content=body, status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None):
    return json_response(dumps({"error": message}), status, headers)


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """An error reply from ASGI middleware (no framework below it has run)."""
    body = dumps({"error": message})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), raw."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None
