"""A sparse index served: /search, /rerank by the model's own dot product, POST /embed_sparse in
text-embeddings-inference's shape (with term strings on request), and /v1/embeddings answering 400 pointing there."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from embedkit.config import IndexSettings, ServeConfig

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def url(tmp_path_factory, sparse_minilm, code_pairs, start_module_server):
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index, open_index
    from embedkit.serve.app import create_app

    root = tmp_path_factory.mktemp("serve-sparse")
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for p in code_pairs[:60]:
            f.write(json.dumps({"_id": p.id, "text": p.code[:400]}) + "\n")
    build_index(str(sparse_minilm), Corpus(str(root / "corpus.jsonl")), root / "index",
                IndexSettings(batch_size=16), progress=False)
    return start_module_server(create_app(open_index(root / "index"), ServeConfig(served_model_name="splade")))


def test_search_and_rerank(url, code_pairs):
    reply = httpx.post(f"{url}/search", json={"query": code_pairs[3].query, "k": 5}, timeout=TIMEOUT)
    assert reply.status_code == 200
    body = reply.json()
    assert body["method"] == "sparse" and len(body["results"][0]["hits"]) == 5
    docs = [p.code[:400] for p in code_pairs[:6]]
    reply = httpx.post(f"{url}/rerank", json={"query": code_pairs[3].query, "documents": docs}, timeout=TIMEOUT)
    assert reply.status_code == 200
    scores = [r["relevance_score"] for r in reply.json()["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_embed_sparse_in_tei_shape(url, sparse_minilm):
    from sentence_transformers import SparseEncoder

    reply = httpx.post(f"{url}/embed_sparse", json={"inputs": ["def add(a, b): return a + b", "parse a url"]},
                       timeout=TIMEOUT)
    assert reply.status_code == 200
    body = reply.json()
    assert len(body) == 2 and set(body[0][0]) == {"index", "value"}
    reference = SparseEncoder(str(sparse_minilm), device="cpu").encode_document(["def add(a, b): return a + b"])
    dense = reference.to_dense()[0].numpy()
    got = np.zeros_like(dense)
    for entry in body[0]:
        got[entry["index"]] = entry["value"]
    np.testing.assert_allclose(got, dense, atol=1e-4)
    texts = httpx.post(f"{url}/embed_sparse", json={"inputs": "parse a url", "return_text": True,
                                                    "prompt_name": "query"}, timeout=TIMEOUT).json()
    vocabulary = SparseEncoder(str(sparse_minilm), device="cpu").tokenizer
    assert texts[0] and all(e["text"] == vocabulary.convert_ids_to_tokens(e["index"]) for e in texts[0])


def test_bad_requests(url):
    reply = httpx.post(f"{url}/v1/embeddings", json={"input": "x"}, timeout=TIMEOUT)
    assert reply.status_code == 400 and "/embed_sparse" in reply.text
    assert httpx.post(f"{url}/embed_sparse", json={"inputs": []}, timeout=TIMEOUT).status_code == 422
    assert httpx.post(f"{url}/embed_sparse", json={"inputs": "x", "k": 3}, timeout=TIMEOUT).status_code == 422


def test_embed_sparse_on_a_dense_server(minilm, start_server):
    from embedkit.serve.app import create_app

    url = start_server(create_app(minilm, ServeConfig()))
    reply = httpx.post(f"{url}/embed_sparse", json={"inputs": "x"}, timeout=TIMEOUT)
    assert reply.status_code == 400 and "not a sparse model" in reply.text
