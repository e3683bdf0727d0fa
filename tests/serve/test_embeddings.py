"""The OpenAI-compatible routes, driven by the official ``openai`` client: vectors equal to the model's own
``encode``, float and base64, ``dimensions``, ``usage``, ``/v1/models``; and what a non-dense model answers."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai  # the dev install's client: a missing one fails, it is never skipped
import pytest

from embedkit.config import EncodeSettings, ServeConfig

TIMEOUT = 60.0
NAME = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def url(minilm, start_module_server):
    from embedkit.serve.app import create_app

    return start_module_server(create_app(minilm, ServeConfig(served_model_name=NAME, api_key="sk-test")))


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def reference(minilm_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_path, device="cpu")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])  # None: the client's default (base64)
def test_openai_client_gets_the_models_own_vectors(client, reference, code_pairs, encoding_format):
    texts = [p.query for p in code_pairs[:5]] + [code_pairs[5].code, "ünïcödé ✓ 漢字", ""]
    kwargs = {"encoding_format": encoding_format} if encoding_format else {}
    reply = client.embeddings.create(model=NAME, input=texts, **kwargs)
    rows = [d.embedding for d in sorted(reply.data, key=lambda d: d.index)]
    if encoding_format == "base64":  # asked for explicitly, the client hands the text over as it came
        rows = [np.frombuffer(base64.b64decode(r), dtype="<f4") for r in rows]
    got = np.array(rows, dtype=np.float32)
    expected = reference.encode(texts, convert_to_numpy=True)
    assert got.shape == (len(texts), 384)
    assert _cosines(got, expected).min() >= 0.9999
    assert reply.model == NAME
    tokens = [len(ids) for ids in reference.tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == sum(tokens)


def test_one_string_input_and_dimensions(client, reference, code_pairs):
    text = code_pairs[7].query
    full = reference.encode([text], convert_to_numpy=True)[0]
    one = client.embeddings.create(model=NAME, input=text)
    assert len(one.data) == 1 and one.data[0].index == 0
    cut = client.embeddings.create(model=NAME, input=[text], dimensions=64, encoding_format="float").data[0].embedding
    expected = full[:64] / np.linalg.norm(full[:64])  # truncated, then normalised again (cosine model)
    assert len(cut) == 64
    np.testing.assert_allclose(cut, expected, atol=1e-4)


def test_models_route(client):
    assert [m.id for m in client.models.list().data] == [NAME]
    assert client.models.retrieve(NAME).id == NAME
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("text-embedding-3-small")


def test_openai_errors(client, url):
    def error(exc_type, **kwargs) -> str:
        with pytest.raises(exc_type) as caught:
            client.embeddings.create(**{"model": NAME, "input": "a"} | kwargs)
        return caught.value.body  # the client keeps our {"error": "..."} text in .body

    assert "is not served here" in error(openai.NotFoundError, model="text-embedding-3-small")
    assert "dimensions" in error(openai.UnprocessableEntityError, dimensions=385)
    assert "token ids are not accepted" in error(openai.UnprocessableEntityError, input=[[101, 2054, 102]])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0).embeddings.create(model=NAME, input="a")
    post = lambda body: httpx.post(f"{url}/v1/embeddings", json=body, timeout=TIMEOUT,  # noqa: E731
                                   headers={"authorization": "Bearer sk-test"})
    assert post({"input": "a", "encoding_format": "int8"}).status_code == 422
    assert post({"input": []}).status_code == 422
    assert post({"input": "a", "dimensions": True}).status_code == 422
    assert post({"input": "x" * 3000}).status_code == 413
    assert post({"input": ["a"] * 1025}).status_code == 413


def test_input_type_uses_the_models_prompts(minilm, start_server, code_pairs):
    """A model with query/document prompts: input_type picks one, as the index encodes queries and documents."""
    from embedkit.serve.app import create_app

    model = minilm.encoder.model
    saved = dict(model.prompts)
    model.prompts = {**saved, "query": "query: ", "document": "passage: "}
    try:
        url = start_server(create_app(minilm, ServeConfig()))
        text = code_pairs[2].query
        vectors = {}
        for input_type in ("query", "document", None):
            body = {"input": [text]} | ({"input_type": input_type} if input_type else {})
            reply = httpx.post(f"{url}/v1/embeddings", json=body, timeout=TIMEOUT).json()
            vectors[input_type] = np.array(reply["data"][0]["embedding"])
        expected_query = model.encode([text], prompt_name="query", normalize_embeddings=True)[0]
        np.testing.assert_allclose(vectors["query"], expected_query, atol=1e-5)
        np.testing.assert_allclose(vectors[None], vectors["document"], atol=1e-6)  # default: as documents
        assert np.dot(vectors["query"], vectors["document"]) < 0.9999
    finally:
        model.prompts = saved


def test_bm25_index_has_no_embeddings(minilm, start_server):
    from embedkit.retrieve.retriever import bm25_over
    from embedkit.serve.app import create_app

    url = start_server(create_app(bm25_over(minilm), ServeConfig()))
    reply = httpx.post(f"{url}/v1/embeddings", json={"input": "a"}, timeout=TIMEOUT)
    assert reply.status_code == 400 and "BM25" in reply.json()["error"]
    assert httpx.post(f"{url}/search", json={"query": "read a file", "k": 2}, timeout=TIMEOUT).status_code == 200


@pytest.mark.colbert
def test_colbert_model_explains_instead_of_embedding(request, start_server):
    from embedkit.index.build import open_index
    from embedkit.serve.app import create_app

    colbert_dir = request.getfixturevalue("tiny_indexes")[1]
    url = start_server(create_app(open_index(colbert_dir, settings=EncodeSettings(batch_size=16)), ServeConfig()))
    reply = httpx.post(f"{url}/v1/embeddings", json={"input": "a"}, timeout=TIMEOUT)
    assert reply.status_code == 400 and "one vector per token" in reply.json()["error"]
