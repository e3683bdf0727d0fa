"""`embedkit serve` answers real HTTP requests: a uvicorn server on 127.0.0.1 in a thread (stopped at the
end of the module, bounded by timeouts), and the CLI started as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from embedkit.config import RetrieveConfig  # noqa: E402

TIMEOUT = 60.0


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def server(tiny_indexes):
    """Base URL of a server over the tiny dense index fused with BM25 (RRF)."""
    from embedkit.retrieve.retriever import open_retriever
    from embedkit.serve import create_app

    index = open_retriever(tiny_indexes[0], RetrieveConfig(fuse_with=["bm25"]), batch_size=16)
    app = create_app(index, tiny_indexes[0], max_batch=64, max_wait_ms=20)
    sock = _free_socket()
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    srv.should_exit = True
    thread.join(timeout=TIMEOUT)
    sock.close()


def test_health_and_info(server):
    url, _ = server
    assert httpx.get(f"{url}/health", timeout=TIMEOUT).json() == {"status": "ok", "num_documents": 80}
    info = httpx.get(f"{url}/info", timeout=TIMEOUT).json()
    assert info["method"] == "rrf(dense,bm25)"
    assert info["manifest"]["kind"] == "dense" and info["manifest"]["num_documents"] == 80
    assert [p["method"] for p in info["retriever"]["parts"]] == ["dense", "bm25"]


def test_search_one_and_many(server, code_pairs, tiny_indexes):
    from embedkit.retrieve.retriever import open_retriever

    url, _ = server
    one = httpx.post(f"{url}/search", json={"query": code_pairs[3].query, "k": 5}, timeout=TIMEOUT)
    assert one.status_code == 200
    body = one.json()
    assert body["method"] == "rrf(dense,bm25)" and len(body["results"]) == 1
    hits = body["results"][0]["hits"]
    assert len(hits) == 5 and all(set(h) == {"id", "score", "text"} for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # the same answer as the library gives, through the same retrieve path
    local = open_retriever(tiny_indexes[0], RetrieveConfig(fuse_with=["bm25"]), batch_size=16)
    assert [h["id"] for h in hits] == [h.id for h in local.search([code_pairs[3].query], k=5)[0]]
    many = httpx.post(f"{url}/search", json={"queries": [p.query for p in code_pairs[:3]], "k": 2,
                                             "with_text": False}, timeout=TIMEOUT).json()
    assert [r["query"] for r in many["results"]] == [p.query for p in code_pairs[:3]]
    assert all(len(r["hits"]) == 2 and set(r["hits"][0]) == {"id", "score"} for r in many["results"])


def test_concurrent_requests_are_batched(server, code_pairs):
    url, app = server
    before = app.state.batcher.batches
    queries = [p.query for p in code_pairs[:16]]
    with httpx.Client(timeout=TIMEOUT) as client, ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda q: client.post(f"{url}/search", json={"query": q, "k": 3}), queries))
    assert all(r.status_code == 200 for r in replies)
    assert [r.json()["results"][0]["query"] for r in replies] == queries
    assert app.state.batcher.batches - before < len(queries)  # some requests shared a search


@pytest.mark.parametrize("body, message", [
    ({}, "exactly one of 'query'"),
    ({"query": "a", "queries": ["b"]}, "exactly one of 'query'"),
    ({"queries": []}, "'queries' is empty"),
    ({"query": "  "}, "must not be empty"),
    ({"query": "a", "k": 0}, "k: Input should be greater than or equal to 1"),
    ({"query": "a", "k": 100000}, "k: Input should be less than or equal to 1000"),
    ({"query": 3}, "query: Input should be a valid string"),
    ({"query": "a", "top": 3}, "top: Extra inputs are not permitted"),
])
def test_bad_requests_get_a_clear_4xx(server, body, message):
    url, _ = server
    reply = httpx.post(f"{url}/search", json=body, timeout=TIMEOUT)
    assert reply.status_code == 422
    assert message in reply.json()["error"]


def test_malformed_json_and_unknown_routes(server):
    url, _ = server
    reply = httpx.post(f"{url}/search", content=b"{not json", headers={"content-type": "application/json"},
                       timeout=TIMEOUT)
    assert reply.status_code == 422 and "JSON" in reply.json()["error"]
    assert httpx.get(f"{url}/search", timeout=TIMEOUT).status_code == 405
    assert httpx.post(f"{url}/index", json={}, timeout=TIMEOUT).status_code == 404  # nothing writes


@pytest.mark.slow
def test_cli_serve_subprocess(tiny_indexes, code_pairs):
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()  # the server binds it again (SO_REUSEADDR); a clash would fail the health wait below
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen([sys.executable, "-m", "embedkit", "serve", "--index-dir", str(tiny_indexes[0]),
                             "--port", str(port), "--fuse-with", "bm25", "--fusion", "weighted",
                             "--weights", "0.5", "0.5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "embedkit serve did not answer /health"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        reply = httpx.post(f"http://127.0.0.1:{port}/search", json={"query": code_pairs[0].query, "k": 3},
                           timeout=TIMEOUT).json()
        assert reply["method"] == "weighted(dense,bm25)" and len(reply["results"][0]["hits"]) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=30)
