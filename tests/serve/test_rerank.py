"""POST /rerank in the request shape Infinity and Cohere clients send, scored by the configured reranker, or by
the served model itself (dense: the index's inner product; ColBERT: MaxSim)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from embedkit.config import ServeConfig

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def url(minilm, start_module_server):
    from embedkit.serve.app import create_app

    return start_module_server(create_app(minilm, ServeConfig(served_model_name="minilm", max_batch=4)))


def _rerank(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/rerank", json=body, timeout=TIMEOUT)


def test_dense_model_scores_by_its_own_similarity(url, minilm_path, code_pairs):
    from sentence_transformers import SentenceTransformer

    query = code_pairs[10].query
    documents = [p.code for p in code_pairs[8:18]]  # 10 documents: computed in slices of --max-batch 4
    reply = _rerank(url, query=query, documents=documents, model="minilm")
    assert reply.status_code == 200
    body = reply.json()
    assert body["object"] == "rerank" and body["model"] == "minilm" and body["id"].startswith("embedkit-")
    model = SentenceTransformer(minilm_path, device="cpu")
    cosine = model.encode(documents, normalize_embeddings=True) @ model.encode(query, normalize_embeddings=True)
    results = body["results"]
    assert [r["index"] for r in results] == list(np.argsort(-cosine, kind="stable"))
    np.testing.assert_allclose([r["relevance_score"] for r in results], np.sort(cosine)[::-1], atol=1e-5)
    assert results[0]["index"] == 2  # the query's own function comes first
    assert all(set(r) == {"index", "relevance_score"} for r in results)  # return_documents defaults to false
    tokens = model.tokenizer([query] + documents, truncation=True, max_length=256)["input_ids"]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] == sum(map(len, tokens))


def test_top_n_return_documents_and_cohere_document_objects(url, code_pairs):
    docs = [code_pairs[0].code, {"text": code_pairs[1].code}, "an unrelated sentence about cooking rice"]
    body = _rerank(url, query=code_pairs[1].query, documents=docs, top_n=2, return_documents=True).json()
    assert len(body["results"]) == 2 and body["results"][0]["index"] == 1
    assert body["results"][0]["document"] == code_pairs[1].code
    assert body["results"][0]["relevance_score"] >= body["results"][1]["relevance_score"]


@pytest.mark.parametrize("body, status, message", [
    ({"query": "q", "documents": []}, 422, "documents: must not be empty"),
    ({"query": "", "documents": ["a"]}, 422, "query: must not be empty"),
    ({"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n"),
    ({"query": "q", "documents": ["a"], "model": "rerank-english-v3.0"}, 404, "is not served here"),
    ({"query": "q", "documents": ["a"], "rank_fields": ["x"]}, 422, "rank_fields: Extra inputs"),
    ({"query": "q", "documents": [{"title": "a"}]}, 422, "documents.0"),
    ({"query": "q", "documents": ["a\ud800"]}, 422, "documents[0]: not valid Unicode"),
    ({"query": "q", "documents": ["a"] * 1025}, 413, "at most 1024"),
])
def test_bad_rerank_requests(url, body, status, message):
    import json

    reply = httpx.post(f"{url}/rerank", content=json.dumps(body).encode(), timeout=TIMEOUT,
                       headers={"content-type": "application/json"})
    assert reply.status_code == status
    assert set(reply.json()) == {"error"} and message in reply.json()["error"]


def test_configured_cross_encoder_scores(minilm, tiny_modernbert, start_server, code_pairs):
    from sentence_transformers import CrossEncoder

    from embedkit.retrieve.rerank import CrossEncoderReranker
    from embedkit.retrieve.retriever import RerankedSearcher
    from embedkit.serve.app import create_app

    model = CrossEncoder(str(tiny_modernbert), num_labels=1)  # random head: any order, but its own
    index = RerankedSearcher(minilm, CrossEncoderReranker(model, batch_size=8), top_n=10)
    url = start_server(create_app(index, ServeConfig(max_batch=3)))
    query, documents = code_pairs[4].query, [p.code for p in code_pairs[:7]]
    body = _rerank(url, query=query, documents=documents).json()
    predicted = np.asarray(model.predict([(query, d) for d in documents], batch_size=8), dtype=np.float32)
    assert [r["index"] for r in body["results"]] == list(np.argsort(-predicted, kind="stable"))
    np.testing.assert_allclose([r["relevance_score"] for r in body["results"]], np.sort(predicted)[::-1],
                               rtol=1e-4, atol=1e-5)
    info = httpx.get(f"{url}/info", timeout=TIMEOUT).json()
    assert info["rerank_scorer"] == "cross-encoder (the configured reranker)"


@pytest.mark.colbert
def test_colbert_model_scores_by_maxsim(request, start_server, code_pairs, tiny_modernbert):
    from embedkit.config import EncodeSettings
    from embedkit.index.build import open_index
    from embedkit.index.encoders import load_encoder
    from embedkit.serve.app import create_app

    colbert_dir = request.getfixturevalue("tiny_indexes")[1]
    url = start_server(create_app(open_index(colbert_dir, settings=EncodeSettings(batch_size=16)), ServeConfig()))
    query, documents = code_pairs[3].query, [p.code for p in code_pairs[:5]]
    body = _rerank(url, query=query, documents=documents).json()
    encoder = load_encoder("colbert", str(tiny_modernbert), EncodeSettings(batch_size=8, max_length=64))  # as built
    expected = encoder.maxsim(encoder.encode_queries([query])[0], encoder.encode_documents(documents))
    got = {r["index"]: r["relevance_score"] for r in body["results"]}
    np.testing.assert_allclose([got[i] for i in range(len(documents))], expected, rtol=1e-4, atol=1e-4)


def test_bm25_index_has_nothing_to_rerank_with(minilm, start_server):
    from embedkit.retrieve.retriever import bm25_over
    from embedkit.serve.app import create_app

    url = start_server(create_app(bm25_over(minilm), ServeConfig()))
    reply = _rerank(url, query="q", documents=["a"])
    assert reply.status_code == 400 and "no model to rerank with" in reply.json()["error"]
