"""Fair scheduling against a real server (default flags, the packaged MiniLM): a 512-text /v1/embeddings request
is computed in token-budget slices, and single-query /search requests sent meanwhile are answered between its
slices, long before it finishes."""

from __future__ import annotations

import threading
import time

import httpx

from embedkit.config import ServeConfig

TIMEOUT = 120.0


def test_single_queries_are_answered_between_the_slices_of_a_big_request(minilm, probe, start_server, code_pairs):
    from embedkit.serve.app import create_app

    app = create_app(minilm, ServeConfig())
    url = start_server(app)
    texts = [(p.code * 4)[:200] for p in code_pairs[:512]]
    queries = [p.query for p in code_pairs[512:517]]
    big: dict[str, float] = {}

    def embed() -> None:
        reply = httpx.post(f"{url}/v1/embeddings", json={"input": texts, "model": app.state.embedkit.model.name},
                           timeout=TIMEOUT)
        assert reply.status_code == 200, reply.text
        big["done"] = time.monotonic()

    worker = threading.Thread(target=embed)
    worker.start()
    deadline = time.monotonic() + TIMEOUT
    while not any(texts[0] in call for call in probe.calls):  # its first slice is being computed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    latencies, answered = [], []
    with httpx.Client(timeout=TIMEOUT) as client:
        for query in queries:
            start = time.monotonic()
            reply = client.post(f"{url}/search", json={"query": query, "k": 3})
            assert reply.status_code == 200, reply.text
            latencies.append(time.monotonic() - start)
            answered.append(time.monotonic())
    worker.join(TIMEOUT)
    assert "done" in big
    assert all(t < big["done"] for t in answered)  # every query answered while the big request was still running
    slices = [call for call in probe.calls if any(t in texts for t in call)]
    assert len(slices) >= 8 and max(len(call) for call in slices) < 512  # computed in slices, not at once
    order = [("query" if any(q in call for q in queries) else "slice") for call in probe.calls
             if any(q in call for q in queries) or any(t in texts for t in call)]
    assert order[-1] == "slice" and order.count("query") == len(queries)
    assert max(latencies) < 10, latencies  # loose: the measured figure is in docs/guides/serving-limits.md
