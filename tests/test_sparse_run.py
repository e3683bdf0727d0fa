"""`embedkit run` on minimal kind: sparse recipes (model, training data, output folder; an index corpus and an eval
set to go through every stage): the tiny random ModernBERT and the packaged MiniLM train, index and evaluate."""

from __future__ import annotations

import json

import pytest

from embedkit.pipeline import run_pipeline
from embedkit.train.recipes import load_recipe


@pytest.fixture()
def small_beir(tmp_path, make_beir, code_pairs):
    pairs = code_pairs[:60]
    return make_beir(tmp_path / "beir", [(p.id, p.code[:400]) for p in pairs],
                     [(f"q{i}", p.query) for i, p in enumerate(pairs[:20])],
                     [(f"q{i}", p.id, 1) for i, p in enumerate(pairs[:20])])


@pytest.mark.slow  # trains two models (tiny ModernBERT and MiniLM), each indexed and evaluated
@pytest.mark.parametrize("backbone", ["tiny_modernbert", "minilm_path"])
def test_minimal_sparse_recipe_runs_every_stage(tmp_path, backbone, request, train_jsonl, small_beir):
    from sentence_transformers import SparseEncoder

    model = request.getfixturevalue(backbone)
    recipe = load_recipe({
        "kind": "sparse", "output_dir": str(tmp_path / "model"),
        "model": {"name": str(model), "max_seq_length": 64},
        "data": {"train": str(train_jsonl)},
        "training": {"batch_size": 8, "max_steps": 3},
        "index": {"corpus": str(small_beir), "output_dir": str(tmp_path / "index")},
        "eval": {"data": [str(small_beir)], "output_dir": str(tmp_path / "eval")},
        "report": {"output_dir": str(tmp_path / "report")},
    })
    run_pipeline(recipe)
    manifest = json.loads((tmp_path / "index" / "embedkit-index.json").read_text())
    assert (manifest["kind"], manifest["backend"]) == ("sparse", "sparse-exact")
    results = [json.loads(p.read_text()) for p in (tmp_path / "eval").rglob("*.json")]
    scored = [r for r in results if r.get("kind") == "sparse"]
    assert scored and 0.0 <= scored[0]["ndcg@10"] <= 1.0 and scored[0]["mean_document_terms"] > 0
    encoded = SparseEncoder(str(tmp_path / "model"), device="cpu").encode_document(["def f(): pass"])
    assert encoded.is_sparse
