"""`embedkit serve` over real HTTP on 127.0.0.1: /search through the same retrieve path as the library,
/health, /info without file paths, /metrics, the one error shape, strict types, and the limits."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from embedkit.config import EncodeSettings, RetrieveConfig, ServeConfig

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def fused(minilm_index):
    from embedkit.retrieve.retriever import open_retriever

    return open_retriever(minilm_index, RetrieveConfig(fuse_with=["bm25"]), settings=EncodeSettings(batch_size=32))


@pytest.fixture(scope="module")
def server(fused, start_module_server):
    """Base URL and app of a server over the MiniLM index fused with BM25 (RRF)."""
    from embedkit.serve.app import create_app

    app = create_app(fused, ServeConfig(max_wait_ms=20, served_model_name="minilm"))
    return start_module_server(app), app


def test_health_get_and_head(server):
    url, _ = server
    assert httpx.get(f"{url}/health", timeout=TIMEOUT).json() == {"status": "ok", "num_documents": 100}
    head = httpx.head(f"{url}/health", timeout=TIMEOUT)
    assert head.status_code == 200 and head.content == b""


def test_info_names_what_is_served_without_paths(server, minilm_index, minilm_path):
    url, _ = server
    reply = httpx.get(f"{url}/info", timeout=TIMEOUT)
    info = reply.json()
    assert info["method"] == "rrf(dense,bm25)" and info["model"] == "minilm" and info["kind"] == "dense"
    assert info["manifest"]["kind"] == "dense" and info["manifest"]["num_documents"] == 100
    assert [p["method"] for p in info["retriever"]["parts"]] == ["dense", "bm25"]
    assert info["limits"]["max_chars"] == 2560 and info["limits"]["model_max_tokens"] == 256
    for secret in (str(minilm_index), str(minilm_index.parent), minilm_path, "/tmp", "/work", "/home"):
        assert secret not in reply.text
    assert not any(isinstance(v, str) and v.startswith("/") for v in _leaves(info | {"routes": []}))
    assert {"/search", "/v1/embeddings", "/info", "/health"} <= set(info["routes"])  # routes as paths


def test_info_keeps_names_of_relative_paths_too(tmp_path, monkeypatch):
    from embedkit.serve.app import _without_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "model").mkdir(parents=True)
    given = {"model": "runs/model", "corpus": "data/corpus.jsonl", "hub": "sentence-transformers/all-MiniLM-L6-v2",
             "up": "../secret/index", "win": "C:\\Users\\me\\index", "name": "flat", "abs": "/srv/x/index"}
    assert _without_paths(given) == {"model": "model", "corpus": "corpus.jsonl",
                                     "hub": "sentence-transformers/all-MiniLM-L6-v2", "up": "index", "win": "index",
                                     "name": "flat", "abs": "index"}


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def test_search_one_and_many(server, code_pairs, fused):
    url, _ = server
    one = httpx.post(f"{url}/search", json={"query": code_pairs[3].query, "k": 5}, timeout=TIMEOUT)
    assert one.status_code == 200
    body = one.json()
    assert body["method"] == "rrf(dense,bm25)" and len(body["results"]) == 1
    hits = body["results"][0]["hits"]
    assert len(hits) == 5 and all(set(h) == {"id", "score", "text"} for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # the same answer as the library gives, through the same retrieve path
    assert [h["id"] for h in hits] == [h.id for h in fused.search([code_pairs[3].query], k=5)[0]]
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
    assert app.state.batcher.batches - before < len(queries)  # some requests shared a model call


@pytest.mark.parametrize("body, status, message", [
    ({}, 422, "exactly one of 'query'"),
    ({"query": "a", "queries": ["b"]}, 422, "exactly one of 'query'"),
    ({"queries": []}, 422, "'queries' is empty"),
    ({"query": "  "}, 422, "query: must not be empty"),
    ({"queries": ["a", ""]}, 422, "queries[1]: must not be empty"),
    ({"query": "a", "k": 0}, 422, "k: must be 1 to 1000"),
    ({"query": "a", "k": 100000}, 422, "k: must be 1 to 1000"),
    ({"query": "a", "k": True}, 422, "k: Input should be a valid integer"),
    ({"query": "a", "k": "3"}, 422, "k: Input should be a valid integer"),
    ({"query": "a", "k": 2.0}, 422, "k: Input should be a valid integer"),
    ({"query": "a", "with_text": 1}, 422, "with_text: Input should be a valid boolean"),
    ({"query": 3}, 422, "query: Input should be a valid string"),
    ({"query": "a", "top": 3}, 422, "top: Extra inputs are not permitted"),
    ({"query": "x" * 2561}, 413, "query: 2561 characters; this server takes at most 2560"),
    ({"queries": ["a"] * 1025}, 413, "queries: 1025 texts; this server takes at most 1024"),
    ({"queries": ["a"] * 20, "k": 1000}, 422, "20 queries × k=1000 = 20000 hits"),
])
def test_bad_requests_get_one_clear_error(server, body, status, message):
    url, _ = server
    reply = httpx.post(f"{url}/search", json=body, timeout=TIMEOUT)
    assert reply.status_code == status
    assert list(reply.json()) == ["error"] and message in reply.json()["error"]


def test_lone_surrogate_is_a_422_before_the_tokenizer(server, minilm):
    url, _ = server
    with pytest.raises(Exception):  # noqa: B017 - what the batch would have met: the tokenizer refuses it
        minilm.encoder.model.tokenizer(["a\ud800b"])
    raw = b'{"queries": ["fine", "a\\ud800b"]}'  # JSON escapes decode to a lone surrogate
    reply = httpx.post(f"{url}/search", content=raw, headers={"content-type": "application/json"}, timeout=TIMEOUT)
    assert reply.status_code == 422
    assert reply.json() == {"error": "queries[1]: not valid Unicode (a lone surrogate, U+D800, at character 1)"}


def test_every_error_has_one_shape(server):
    url, _ = server
    cases = [
        httpx.post(f"{url}/search", content=b"{not json", headers={"content-type": "application/json"}),
        httpx.post(f"{url}/search", content=b'{"query": "a"}', headers={"content-type": "text/plain"}),
        httpx.post(f"{url}/search", content=b'{"query": "a"}'),  # no content type at all
        httpx.post(f"{url}/search", content=b'{"query": "a"}',
                   headers={"content-type": "application/json; charset=latin-1"}),
        httpx.get(f"{url}/search"),
        httpx.post(f"{url}/index", json={}),  # nothing writes
        httpx.delete(f"{url}/health"),
        httpx.get(f"{url}/docs"), httpx.get(f"{url}/openapi.json"), httpx.get(f"{url}/redoc"),  # off by default
    ]
    assert [r.status_code for r in cases] == [422, 415, 415, 415, 405, 404, 405, 404, 404, 404]
    for reply in cases:
        assert reply.headers["content-type"] == "application/json"
        assert set(reply.json()) == {"error"} and isinstance(reply.json()["error"], str)
    assert "not valid JSON" in cases[0].json()["error"]
    assert "Content-Type: application/json" in cases[1].json()["error"]


def test_docs_only_when_asked(fused, start_server):
    from embedkit.serve.app import create_app

    url = start_server(create_app(fused, ServeConfig(docs=True)))
    assert httpx.get(f"{url}/openapi.json", timeout=TIMEOUT).json()["paths"].keys() >= {"/search", "/v1/embeddings",
                                                                                          "/rerank", "/health"}
    assert httpx.get(f"{url}/docs", timeout=TIMEOUT).status_code == 200


def test_limits_follow_the_flags(fused, start_server):
    from embedkit.serve.app import create_app

    url = start_server(create_app(fused, ServeConfig(max_chars=10, max_texts=2, max_k=5, max_hits=6,
                                                     max_body_bytes=200)))
    post = lambda body: httpx.post(f"{url}/search", json=body, timeout=TIMEOUT)  # noqa: E731
    assert post({"query": "x" * 11}).status_code == 413
    assert post({"queries": ["a", "b", "c"]}).status_code == 413
    assert post({"query": "a", "k": 6}).status_code == 422
    assert post({"queries": ["a", "b"], "k": 4}).status_code == 422  # 8 hits > 6
    assert post({"queries": ["a", "b"], "k": 3}).status_code == 200
    big = post({"queries": ["a"], "k": 1, "with_text": False, "pad": "y" * 300})
    assert big.status_code == 413 and "at most 200" in big.json()["error"]


def test_metrics_count_requests_batches_and_queue(server, code_pairs):
    url, _ = server
    httpx.post(f"{url}/search", json={"query": code_pairs[0].query, "k": 1}, timeout=TIMEOUT)
    httpx.get(f"{url}/does-not-exist", timeout=TIMEOUT)
    reply = httpx.get(f"{url}/metrics", timeout=TIMEOUT)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    assert 'embedkit_requests_total{method="POST",route="/search",status="200"}' in text
    assert 'embedkit_requests_total{method="GET",route="other",status="404"}' in text  # paths do not become labels
    assert "embedkit_request_duration_seconds_bucket" in text
    assert 'embedkit_batch_texts_count{work="search"}' in text
    assert "embedkit_queue_texts 0.0" in text


def test_access_log_line_per_request(server, caplog):
    url, _ = server
    with caplog.at_level(logging.INFO, logger="embedkit.serve.access"):
        httpx.get(f"{url}/health", timeout=TIMEOUT)
        httpx.get(f"{url}/nope%0Aforged", timeout=TIMEOUT)
        # A line is written once its reply has gone out, so an earlier test's last line can land here too:
        # wait for the lines of these two requests, not for any two lines.
        deadline = time.monotonic() + TIMEOUT

        def lines() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "embedkit.serve.access"]

        while not (any("/health" in line for line in lines()) and any("forged" in line for line in lines())) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = lines()
    assert any('"GET /health" 200' in line for line in lines)
    forged = next(line for line in lines if "forged" in line)
    assert "\n" not in forged and '"GET /nope\\nforged" 404' in forged


def test_search_reply_is_json_with_scores(server, code_pairs):
    url, _ = server
    reply = httpx.post(f"{url}/search", json={"query": code_pairs[1].query, "k": 3, "with_text": False},
                       timeout=TIMEOUT)
    body = json.loads(reply.content)
    assert body["k"] == 3 and body["took_ms"] >= 0
    assert all(isinstance(h["score"], float) for h in body["results"][0]["hits"])


def test_the_packaged_model_is_served_by_the_name_eval_and_report_give_it(minilm):
    from embedkit.serve.work import served_model

    assert served_model(minilm).name == "all-MiniLM-L6-v2"  # its card's title, not its folder's name ("model")
    assert served_model(minilm, "code-minilm").name == "code-minilm"  # --served-model-name wins
