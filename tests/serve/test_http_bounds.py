"""The HTTP layer below the JSON routes, against a real server on 127.0.0.1 through raw sockets: header bombs
(bytes and lines), connections that never finish their headers, too many connections, malformed requests and
bodies that do not parse. Every refusal is the one ``{"error": ...}`` JSON shape; every loop is bounded."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest

from embedkit.config import ServeConfig

TIMEOUT = 30.0


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


@pytest.fixture()
def serve(minilm, start_server):
    """``serve(**flags) -> (host, port)`` of a fresh server with these ServeConfig fields (else the defaults)."""
    from embedkit.serve.app import create_app

    def start(**flags):
        url = start_server(create_app(minilm, ServeConfig(**flags)))
        host, port = url.removeprefix("http://").split(":")
        return host, int(port)

    return start


def _connect(address) -> socket.socket:
    sock = socket.create_connection(address, timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def _read_reply(sock: socket.socket, deadline: float = TIMEOUT) -> bytes:
    """Everything the server sends until it closes (bounded by ``deadline`` seconds)."""
    data, end = b"", time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _status_and_error(reply: bytes) -> tuple[int, str]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), reply[:300]
    return int(head.split()[1]), json.loads(body)["error"]


def test_a_64_mib_header_bomb_is_refused_with_flat_memory(serve):
    """Default flags: a header that never ends is cut at --max-header-bytes (431), so the server's memory stays
    flat while the client tries to send 64 MiB."""
    address = serve()
    sock = _connect(address)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bomb: ")
    before, sent, reply = _rss_kb(), 0, b""
    chunk = b"a" * (64 * 1024)
    try:
        while sent < 64 << 20:  # bounded: 1,024 chunks at most
            sock.sendall(chunk)
            sent += len(chunk)
            if select.select([sock], [], [], 0)[0]:
                reply += sock.recv(65536)
                if reply:
                    break
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply += _read_reply(sock, 5)
    grown = _rss_kb() - before
    sock.close()
    assert sent < 32 << 20, "the server kept reading the header bomb"
    assert grown < 16 * 1024, f"the server process grew {grown} KiB"
    if reply:  # the refusal itself (a reset may drop it, after the server stopped reading)
        status, error = _status_and_error(reply)
        assert status == 431 and "--max-header-bytes" in error


def test_a_head_just_over_the_limit_gets_431_json(serve):
    address = serve(max_header_bytes=4096)
    sock = _connect(address)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n")
    status, error = _status_and_error(_read_reply(sock))
    assert status == 431 and "4096" in error
    small = _connect(address)  # the server still answers others
    small.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert _read_reply(small).startswith(b"HTTP/1.1 200")


def test_too_many_header_lines_get_431_json(serve):
    address = serve()
    sock = _connect(address)
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(ServeConfig().max_headers + 1))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lines + b"\r\n")
    status, error = _status_and_error(_read_reply(sock))
    assert status == 431 and "--max-headers" in error


def test_connections_that_never_finish_their_headers_are_closed_within_the_timeout(serve):
    """40 silent connections and 40 that send half a head: all closed within --header-timeout (plus slack); the
    half-heads get 408, the silent ones are just closed."""
    assert ServeConfig().header_timeout <= 30  # the default is finite
    address = serve(header_timeout=1.0)
    silent = [_connect(address) for _ in range(40)]
    partial = [_connect(address) for _ in range(40)]
    for sock in partial:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    start = time.monotonic()
    for sock in silent:
        assert _read_reply(sock, 10) == b""
    for sock in partial:
        status, error = _status_and_error(_read_reply(sock, 10))
        assert status == 408 and "--header-timeout" in error
    assert time.monotonic() - start < 8, "connections were held past the header time-out"
    for sock in silent + partial:
        sock.close()


def test_a_slow_but_complete_client_is_served(serve):
    """Bytes trickling in within the time-out are a request like any other."""
    address = serve(header_timeout=2.0)
    sock = _connect(address)
    for part in (b"GET /health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"Connection: close\r\n\r\n"):
        sock.sendall(part)
        time.sleep(0.2)
    assert _read_reply(sock).startswith(b"HTTP/1.1 200")


def test_connections_past_the_cap_get_503_json(serve):
    address = serve(max_connections=3)
    held = [_connect(address) for _ in range(3)]
    time.sleep(0.2)
    extra = _connect(address)
    reply = _read_reply(extra, 10)
    status, error = _status_and_error(reply)
    assert status == 503 and "--max-connections" in error and b"retry-after: 1" in reply.lower()
    for sock in held:
        sock.close()
    time.sleep(0.2)
    again = _connect(address)  # room again once they are gone
    again.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert _read_reply(again).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /health HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
], ids=["bad-request-line", "bad-version", "ambiguous-length"])
def test_malformed_requests_get_400_json(serve, raw):
    address = serve()
    sock = _connect(address)
    sock.sendall(raw)
    status, error = _status_and_error(_read_reply(sock))
    assert status == 400 and error


@pytest.mark.parametrize("body, headers, needle", [
    (b'{"query": "caf\xe9"}', {}, "not valid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, {}, "nests too deeply"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", {"content-encoding": "gzip"}, "Content-Encoding"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", {}, "not valid UTF-8"),
    (b'{"query": ', {}, "not valid JSON"),
], ids=["latin-1", "deep-nesting", "gzip", "gzip-unlabelled", "truncated"])
def test_bodies_that_do_not_parse_get_422_json(serve, body, headers, needle):
    host, port = serve()
    reply = httpx.post(f"http://{host}:{port}/search", content=body, timeout=TIMEOUT,
                       headers={"content-type": "application/json"} | headers)
    assert reply.status_code == 422 and reply.headers["content-type"] == "application/json"
    assert needle in reply.json()["error"]


def test_disallowed_cors_preflight_is_json(serve):
    host, port = serve(cors_origins=["https://app.example"])
    reply = httpx.options(f"http://{host}:{port}/search", timeout=TIMEOUT,
                          headers={"origin": "https://evil.example", "access-control-request-method": "POST"})
    assert reply.status_code == 400 and reply.headers["content-type"] == "application/json"
    assert "origin" in reply.json()["error"].lower()


def test_an_over_long_k_is_not_echoed_whole(serve):
    host, port = serve()
    k = "9" * 4000
    reply = httpx.post(f"http://{host}:{port}/search", timeout=TIMEOUT, headers={"content-type": "application/json"},
                       content=b'{"query": "x", "k": ' + k.encode() + b"}")
    assert reply.status_code == 422 and reply.headers["content-type"] == "application/json"
    assert k not in reply.text and len(reply.text) < 1000
