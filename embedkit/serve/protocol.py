"""The HTTP layer below the application: uvicorn's httptools protocol with the bounds it lacks.

uvicorn 0.55 with httptools keeps reading a request's headers for as long as a client sends them (200 MiB were
accepted), never times out a connection that has not finished its headers (its keep-alive timer stops at the
first byte), and answers parse errors and its concurrency limit in text/plain. This subclass, given to
``uvicorn.Config(http=...)``, counts the bytes of each request head before the parser sees them (431 once past
``max_header_bytes``, so no more than that is ever held), counts header lines (431 past ``max_headers``), closes a
connection whose head is not complete within ``header_timeout`` seconds (408 when it sent part of one), refuses
connections beyond ``max_connections`` (503) and answers every one of these, and malformed requests (400), in the
one ``{"error": ...}`` JSON shape. Bodies are bounded above it, by :class:`embedkit.serve.guards.BodyGuard`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from embedkit.config import ServeConfig
from embedkit.serve.replies import dumps

logger = logging.getLogger("embedkit.serve")

_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head that broke a limit (the reply is in ``_over``)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; the class attributes are the limits (see :func:`protocol_for`)."""

    max_header_bytes = 64 * 1024
    max_headers = 100
    header_timeout = 10.0
    max_connections = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True          # reading a request head (not yet its body or the reply)
        self._head_bytes = 0
        self._head_tail = b""         # the last bytes seen, to find a head's end split across two reads
        self._header_lines = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._over: tuple[int, str] | None = None
        self._refused = False

    # connection lifetime
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(503, f"this server holds at most {self.max_connections} connections (--max-connections); "
                              "retry shortly", retry_after=1)
            return
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head and self._head_too_large(data):
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            status, message = self._over or (400, f"malformed HTTP request ({exc})")
            self._refuse(status, message)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg)

    # parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_lines = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > self.max_headers:
            self._over = (431, f"more than {self.max_headers} request header lines (--max-headers)")
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._head_tail = True, 0, b""

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_head and not self.pipeline and not self.transport.is_closing():
            self._start_head_timer()  # the next request's head: the same time-out as the first one's

    # the bounds
    def _head_too_large(self, data: bytes) -> bool:
        """Count ``data`` towards the request head (up to its blank line); refuse past ``max_header_bytes``."""
        seen = self._head_tail + data
        ends = [seen.find(end) for end in _HEAD_ENDS]
        found = [i + len(end) for i, end in zip(ends, _HEAD_ENDS) if i >= 0]
        if found:
            head = min(found) - len(self._head_tail)
            self._head_bytes += max(head, 0)
        else:
            self._head_bytes += len(data)
            self._head_tail = seen[-3:]
        if self._head_bytes > self.max_header_bytes:
            self._refuse(431, f"request head over {self.max_header_bytes} bytes (--max-header-bytes)")
            return True
        return False

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, f"the request headers did not arrive within {self.header_timeout:g} s "
                              "(--header-timeout)")
        else:  # an idle connection that never sent a byte: nothing to answer
            self._refused = True
            self.transport.close()

    def _refuse(self, status: int, message: str, retry_after: int | None = None) -> None:
        """Answer ``{"error": message}`` with ``status`` and close the connection; nothing more is read."""
        if self._refused:
            return
        self._refused = True
        self._stop_head_timer()
        if status >= 500:
            logger.warning("HTTP %d: %s", status, message)
        body = dumps({"error": message})
        head = [STATUS_LINE[status], b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n", b"connection: close\r\n"]
        if retry_after is not None:
            head.append(b"retry-after: " + str(retry_after).encode("ascii") + b"\r\n")
        if not self.transport.is_closing():
            self.transport.write(b"".join(head) + b"\r\n" + body)
            self.transport.close()


def protocol_for(cfg: ServeConfig) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with ``cfg``'s limits (a class per server, as ``uvicorn.Config(http=...)`` takes)."""
    return type("EmbedkitHttpProtocol", (BoundedHttpToolsProtocol,),
                {"max_header_bytes": cfg.max_header_bytes, "max_headers": cfg.max_headers,
                 "header_timeout": cfg.header_timeout, "max_connections": cfg.max_connections})


def uvicorn_config(app: Any, cfg: ServeConfig) -> Any:
    """The uvicorn configuration ``embedkit serve`` runs ``app`` with (tests start servers with it too)."""
    import uvicorn

    return uvicorn.Config(app, http=protocol_for(cfg), log_config=None, log_level="warning", access_log=False,
                          server_header=False, timeout_keep_alive=5, timeout_graceful_shutdown=cfg.request_timeout)
