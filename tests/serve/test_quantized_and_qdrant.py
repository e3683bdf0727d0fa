"""`embedkit serve` over a binary-quantized FAISS index and a local Qdrant index, each fused with BM25: the HTTP
answer is the library's, through the same Searcher; both are rebuilt from the MiniLM index's kept shards."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from embedkit.config import EncodeSettings, IndexSettings, QdrantConfig, RetrieveConfig, ServeConfig
from tests.helpers import rebuild_from_shards

pytest.importorskip("qdrant_edge")


@pytest.mark.parametrize("settings", [IndexSettings(quantization="binary"),
                                      IndexSettings(backend="qdrant", qdrant=QdrantConfig())],
                         ids=["binary", "qdrant"])
def test_search_over_http_is_the_library_answer(tmp_path, minilm_index, code_pairs, start_server, settings):
    from embedkit.index.build import open_index
    from embedkit.retrieve.retriever import open_retriever
    from embedkit.serve.app import create_app

    corpus = Path(open_index(minilm_index).manifest.corpus)
    index = rebuild_from_shards(minilm_index, tmp_path / "index", corpus, settings)
    assert index.description()["backend"] in ("flat", "qdrant")
    fused = open_retriever(tmp_path / "index", RetrieveConfig(fuse_with=["bm25"]),
                           settings=EncodeSettings(batch_size=32))
    url = start_server(create_app(fused, ServeConfig(max_wait_ms=5)))
    query = code_pairs[7].query
    body = httpx.post(f"{url}/search", json={"query": query, "k": 5}, timeout=60).json()
    assert body["method"] == "rrf(dense,bm25)"
    hits = [h["id"] for h in body["results"][0]["hits"]]
    assert hits == [h.id for h in fused.search([query], k=5)[0]]
    assert code_pairs[7].id in hits
