"""Bounded hostile loops against a real server: one bad client never hurts the others. A poison request among
concurrent good ones, oversized bodies, clients that go away, a full queue, a request past its time-out."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from embedkit.config import ServeConfig

TIMEOUT = 60.0
HOLD, FAIL = "\x00HOLD", "\x00FAIL"  # texts the probe holds or fails on (see conftest.Probe)


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


@pytest.fixture()
def app_url(minilm, probe, start_server):
    """A fresh server over the MiniLM index whose encoder is the probe; returns (url, app, probe)."""
    from embedkit.serve.app import create_app

    def start(**config):
        app = create_app(minilm, ServeConfig(**({"max_wait_ms": 20} | config)))
        return start_server(app), app, probe

    return start


def test_poison_requests_fail_alone_among_concurrent_good_clients(app_url, code_pairs):
    """8 good clients and 1 that alternates a model failure and a lone surrogate: every good reply is a 200
    with its own results, every poison reply its own 500 / 422, and poison shared batches with good requests."""
    url, app, probe = app_url()
    good_queries = [p.query for p in code_pairs[:32]]
    stop = threading.Event()
    poison_status: list[int] = []

    def poison() -> None:
        with httpx.Client(timeout=TIMEOUT) as client:
            for i in range(40):  # bounded
                if stop.is_set():
                    return
                if i % 2:
                    raw = b'{"query": "a\\ud800b"}'
                    reply = client.post(f"{url}/search", content=raw, headers={"content-type": "application/json"})
                else:
                    reply = client.post(f"{url}/search", json={"query": f"parse {FAIL} a date"})
                poison_status.append(reply.status_code)

    def good(query: str) -> tuple[int, str]:
        with httpx.Client(timeout=TIMEOUT) as client:
            reply = client.post(f"{url}/search", json={"query": query, "k": 3})
            return reply.status_code, reply.json()["results"][0]["query"] if reply.status_code == 200 else reply.text

    poisoner = threading.Thread(target=poison)
    poisoner.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(good, good_queries * 2))
    finally:
        stop.set()
        poisoner.join(TIMEOUT)
    assert [r for r in replies if r[0] != 200] == []
    assert [q for _, q in replies] == good_queries * 2  # each got its own results
    assert set(poison_status) == {500, 422}
    shared = [call for call in probe.calls if len(call) > 1 and any(FAIL in t for t in call)]
    assert shared, "no batch mixed poison with good requests: isolation was not exercised"
    error = httpx.post(f"{url}/search", json={"query": FAIL}, timeout=TIMEOUT).json()["error"]
    assert "the model failed on this request" in error
    assert "cannot encode" not in error and "ValueError" not in error  # the reason is logged, never sent


def test_oversized_body_is_refused_without_reading_it(app_url):
    url, app, _ = app_url(max_body_bytes=1 << 20)
    chunk = b"x" * (1 << 20)
    # declared: refused on Content-Length, before a byte of the body is read
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 52428800\r\n\r\n")
        reply = _read_all(sock)  # the server closes the connection after its reply
    assert reply.startswith(b"HTTP/1.1 413") and b"at most 1048576" in reply
    # streamed (chunked, no length): cut as soon as it passes the limit; the server holds at most the limit
    before = _rss_kb()

    def body():
        for _ in range(50):  # 50 MB offered
            yield chunk

    for _ in range(3):
        try:
            reply = httpx.post(f"{url}/search", content=body(), headers={"content-type": "application/json"},
                               timeout=TIMEOUT)
            assert reply.status_code == 413 and set(reply.json()) == {"error"}
        except httpx.TransportError:
            pass  # the server may close the connection while the client is still sending
    assert _rss_kb() - before < 20 * 1024  # in KB: the 150 MB offered never landed in memory
    assert httpx.post(f"{url}/search", json={"query": "still fine"}, timeout=TIMEOUT).status_code == 200


def test_clients_that_go_away_are_not_computed(app_url, code_pairs):
    """Ten 256-query requests whose clients disconnect while the model is busy are dropped: the encoder never
    sees their queries, and a well-behaved client is answered right after the busy batch."""
    url, app, probe = app_url(max_queue=4096)
    port = int(url.rsplit(":", 1)[1])
    holder = threading.Thread(target=lambda: httpx.post(f"{url}/search", json={"query": HOLD}, timeout=TIMEOUT))
    holder.start()
    assert probe.held.wait(TIMEOUT)  # the model thread is busy now
    orphan_queries = [f"orphan {i} {code_pairs[i % 50].query}" for i in range(256)]
    body = json.dumps({"queries": orphan_queries, "k": 3}).encode()
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(10)]
    for sock in sockets:
        sock.sendall(b"POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
    _wait_for(lambda: app.state.batcher.queued == 2560)  # all ten queued behind the busy model...
    for sock in sockets:
        sock.close()  # ...when their clients go away at once
    _wait_for(lambda: app.state.batcher.queued == 0)  # all ten dropped from the queue
    good = ThreadPoolExecutor(1).submit(httpx.post, f"{url}/search", json={"query": "read a file"},
                                        timeout=TIMEOUT)
    _wait_for(lambda: app.state.batcher.queued == 1)
    probe.gate.set()
    assert good.result(TIMEOUT).status_code == 200
    holder.join(TIMEOUT)
    assert not any(t.startswith("orphan") for t in probe.seen)
    metrics = httpx.get(f"{url}/metrics", timeout=TIMEOUT).text
    assert 'embedkit_dropped_requests_total{reason="client_gone"} 10.0' in metrics


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _wait_for(condition, limit: float = TIMEOUT) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_full_queue_answers_503_with_retry_after(app_url):
    url, app, probe = app_url(max_queue=10)
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(httpx.post, f"{url}/search", json={"query": HOLD}, timeout=TIMEOUT)
        assert probe.held.wait(TIMEOUT)
        waiting = pool.submit(httpx.post, f"{url}/search", json={"queries": ["a"] * 8}, timeout=TIMEOUT)
        _wait_for(lambda: app.state.batcher.queued == 8)
        full = httpx.post(f"{url}/search", json={"queries": ["b"] * 3}, timeout=TIMEOUT)
        assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
        assert "queue full" in full.json()["error"]
        fits = pool.submit(httpx.post, f"{url}/search", json={"queries": ["c"] * 2}, timeout=TIMEOUT)
        _wait_for(lambda: app.state.batcher.queued == 10)
        probe.gate.set()
        assert [f.result(TIMEOUT).status_code for f in (held, waiting, fits)] == [200, 200, 200]


def test_request_timeout_answers_503_and_drops_the_work(app_url):
    url, app, probe = app_url(request_timeout=0.5)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.post, f"{url}/search", json={"query": HOLD}, timeout=TIMEOUT)
        assert probe.held.wait(TIMEOUT)
        late = httpx.post(f"{url}/search", json={"query": "too late"}, timeout=TIMEOUT)
        assert late.status_code == 503 and "no reply within 0.5 s" in late.json()["error"]
        assert app.state.batcher.queued == 0
        probe.gate.set()
        assert held.result(TIMEOUT).status_code == 503  # the held request passed its time-out too
    assert "too late" not in probe.seen
    assert httpx.post(f"{url}/search", json={"query": "on time"}, timeout=TIMEOUT).status_code == 200


def test_slow_body_gets_408(app_url):
    url, _, _ = app_url(request_timeout=0.5)
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")  # and then nothing
        assert _read_all(sock).startswith(b"HTTP/1.1 408")
