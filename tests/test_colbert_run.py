"""A minimal ``kind: colbert`` recipe (model, data, training.max_steps) on this environment's ColBERT library:
`embedkit run` trains, indexes (PLAID) and evaluates; the same model indexes exactly and serves ``/search``."""

from __future__ import annotations

import json

import pytest

from embedkit.train.recipes import load_recipe
from tests.helpers import write_code_beir

pytestmark = pytest.mark.colbert


@pytest.mark.slow  # a 2-step training, a PLAID and an exact index of 100 documents, one evaluation
def test_minimal_colbert_recipe_trains_indexes_evaluates_and_serves(tmp_path, tiny_modernbert, train_jsonl,
                                                                    code_pairs, colbert_library,
                                                                    native_colbert):
    from embedkit.cli import main
    from embedkit.pipeline import run_pipeline

    pairs = code_pairs[:100]
    beir = write_code_beir(tmp_path / "beir", pairs, 20)
    recipe = load_recipe({
        "kind": "colbert", "output_dir": str(tmp_path / "model"),
        "model": {"name": str(tiny_modernbert)},
        "colbert": {"library": colbert_library.name},  # explicit: the same recipe with auto picks it too
        "data": {"train": str(train_jsonl)},
        "training": {"max_steps": 2, "batch_size": 8},
        "index": {"corpus": str(beir), "backend": "plaid", "output_dir": str(tmp_path / "plaid"),
                  "max_length": 64},
        "eval": {"data": [str(beir)], "output_dir": str(tmp_path / "eval"), "max_length": 64},
    })
    result = run_pipeline(recipe, ("train", "index", "eval"))
    model = tmp_path / "model"
    assert result.model == str(model)
    manifest = json.loads((model / "embedkit.json").read_text())
    assert manifest["colbert_library"] == colbert_library.name
    assert native_colbert(model).query_length == 32  # fresh defaults, in the library's own class

    plaid = json.loads((tmp_path / "plaid" / "embedkit-index.json").read_text())
    assert plaid["backend"] == "plaid" and plaid["kind"] == "colbert" and plaid["num_documents"] == 100
    assert plaid["settings"]["colbert_library"] == colbert_library.name
    scores = json.loads(next((tmp_path / "eval").rglob("*.json")).read_text())
    assert scores["kind"] == "colbert" and 0.0 <= scores["ndcg@10"] <= 1.0 and scores["num_queries"] == 20

    exact = tmp_path / "exact"
    assert main(["index", "--model", str(model), "--corpus", str(beir), "--index-dir", str(exact), "--backend",
                 "exact", "--max-length", "64", "--colbert-library", colbert_library.name]) == 0

    from fastapi.testclient import TestClient

    from embedkit.config import ServeConfig
    from embedkit.retrieve.retriever import open_retriever
    from embedkit.serve import create_app

    index = open_retriever(exact, batch_size=16, colbert_library=colbert_library.name)
    config = ServeConfig(max_batch=8, max_wait_ms=5, allowed_hosts=["testserver"])  # TestClient's Host
    with TestClient(create_app(index, config)) as client:
        reply = client.post("/search", json={"queries": [pairs[3].code[:80]], "k": 5, "with_text": False})
    assert reply.status_code == 200, reply.text
    hits = reply.json()["results"][0]["hits"]
    assert len(hits) == 5 and hits[0]["id"] == pairs[3].id  # a document's own opening finds it
