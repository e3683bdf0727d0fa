"""ASGI middleware that refuses a request before any work: wrong Host, missing or wrong API key, wrong
content type, a body too large or too slow. Each answers with the one error shape (``replies.py``).

They are plain ASGI callables (not Starlette's BaseHTTPMiddleware) so that the request's ``receive`` channel
reaches the routes untouched: the routes watch it to notice a client that went away.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
from collections.abc import Collection
from http import HTTPStatus

from embedkit.serve.replies import ASGIApp, Message, Receive, Scope, Send, dumps, header, send_error

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(raw: bytes) -> str:
    """``[::1]:8000`` → ``::1``; ``LocalHost.:80`` → ``localhost``."""
    text = raw.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0].rstrip(".") if text.count(":") == 1 else text.rstrip(".")


def accepted_hosts(bound: str, extra: Collection[str]) -> frozenset[str] | None:
    """Host names served; None = any. Loopback: its own names and ``extra`` (against DNS rebinding)."""
    if "*" in extra:
        return None
    names = {host_name(h.encode("latin-1")) for h in extra}
    if is_loopback(bound):
        return frozenset(names | set(LOOPBACK_NAMES) | {host_name(bound.encode("latin-1"))})
    return frozenset(names) if names else None


class HostGuard:
    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hosts is not None:
            raw = header(scope, b"host")
            if raw is not None and host_name(raw) not in self.hosts:
                shown = raw.decode("latin-1")[:100]
                await send_error(send, 400, f"Host {shown!r} is not served here (--allowed-host adds names)")
                return
        await self.app(scope, receive, send)


class ApiKeyGuard:
    """``Authorization: Bearer KEY`` on every path but ``open_paths``; compared in constant time (digests of
    equal length, so not even the key's length leaks)."""

    def __init__(self, app: ASGIApp, key: str, open_paths: Collection[str] = ("/health",)):
        self.app = app
        self.digest = hashlib.sha256(key.encode("utf-8")).digest()
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.open_paths:
            scheme, _, token = (header(scope, b"authorization") or b"").partition(b" ")
            given = hashlib.sha256(token.strip()).digest()
            if not (hmac.compare_digest(given, self.digest) and scheme.lower() == b"bearer"):
                problem = "wrong API key" if token else "missing API key"
                await send_error(send, 401, f"{problem}: send the header 'Authorization: Bearer KEY'",
                                 {"WWW-Authenticate": "Bearer"})
                return
        await self.app(scope, receive, send)


class BodyGuard:
    """Bodies of POST/PUT/PATCH: JSON on ``json_paths`` (415 otherwise), at most ``max_bytes`` (413, refused by
    Content-Length before reading, or as soon as a streamed body passes the limit), within ``timeout`` s
    (408). The body is read here and replayed to the app; the rest of ``receive`` passes through."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float, json_paths: Collection[str]):
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout
        self.json_paths = frozenset(json_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.json_paths:
            media, *params = (header(scope, b"content-type") or b"").decode("latin-1").lower().split(";")
            charset = next((p.split("=", 1)[1].strip().strip('"') for p in params if "=" in p
                            and p.split("=", 1)[0].strip() == "charset"), "utf-8")
            if media.strip() != "application/json" or charset not in ("utf-8", "utf8"):
                await send_error(send, 415, "send the body as JSON with the header 'Content-Type: application/json'")
                return
            encoding = (header(scope, b"content-encoding") or b"identity").decode("latin-1").strip().lower()
            if encoding != "identity":
                await send_error(send, 422, f"the body is not usable JSON: Content-Encoding {encoding[:40]!r} is not "
                                            "accepted here; send it uncompressed")
                return
        length = header(scope, b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await send_error(send, 400, "Content-Length is not a number")
                return
            if len(length.strip()) > 15 or int(length) > self.max_bytes:  # 15 digits: no huge int parsing
                await send_error(send, 413, f"request body of {length.strip()[:20].decode()} bytes; this server "
                                            f"takes at most {self.max_bytes} (--max-body-bytes)",
                                 {"Connection": "close"})
                return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout)
        except asyncio.TimeoutError:
            await send_error(send, 408, f"the request body did not arrive within {self.timeout:g} s",
                             {"Connection": "close"})
            return
        except _TooLarge:
            await send_error(send, 413, f"request body over {self.max_bytes} bytes, the most this server takes "
                                        "(--max-body-bytes)", {"Connection": "close"})
            return
        if body is None:  # the client went away while sending
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body (None if the client went away); :class:`_TooLarge` as soon as it passes the limit,
        so no more than the limit is ever held."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _TooLarge(Exception):
    pass


class JsonErrors:
    """Every 4xx/5xx reply in the one error shape: a reply from below that is not JSON (Starlette's CORS refusal,
    a framework's plain-text error) has its text, cut to 300 characters, sent as ``{"error": text}``."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                kind = dict(message.get("headers", ())).get(b"content-type", b"")
                if message["status"] >= 400 and not kind.startswith(b"application/json"):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                if sum(map(len, chunks)) < 4096:
                    chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                text = b"".join(chunks).decode("utf-8", "replace").strip()[:300]
                body = dumps({"error": text or HTTPStatus(held["status"]).phrase})
                headers = [(k, v) for k, v in held.get("headers", ()) if k.lower() not in (b"content-type",
                                                                                           b"content-length")]
                headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, rewrite)
