"""`embedkit mine --teacher-scores` writes the distillation layout (queries, documents, train with the
cross-encoder's scores), and a kind: sparse recipe with loss splade_distillation trains on that folder as is."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.cli import main
from embedkit.errors import EmbedkitError
from embedkit.train.mining import MiningOptions, mine


@pytest.fixture()
def pairs_jsonl(tmp_path, code_pairs):
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for p in code_pairs[200:260]:
            f.write(json.dumps({"query": p.query, "positive": p.code[:300]}) + "\n")
    return path


@pytest.fixture()
def cross_encoder(tmp_path, tiny_modernbert):
    from sentence_transformers import CrossEncoder

    folder = tmp_path / "tiny-ce"
    CrossEncoder(str(tiny_modernbert), num_labels=1, max_length=64).save(str(folder))  # random: mechanics only
    return folder


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_mined_teacher_scores_train_a_sparse_model(tmp_path, pairs_jsonl, cross_encoder, tiny_modernbert):
    from sentence_transformers import CrossEncoder, SparseEncoder

    from embedkit.train.recipes import load_recipe
    from embedkit.train.run import train

    out = tmp_path / "teacher"
    assert main(["mine", "--model", "bm25", "--data", str(pairs_jsonl), "--output", str(out), "--num-negatives", "3",
                 "--range-max", "10", "--cross-encoder", str(cross_encoder), "--teacher-scores"]) == 0
    queries = {r["query_id"]: r["text"] for r in _rows(out / "queries.jsonl")}
    documents = {r["document_id"]: r["text"] for r in _rows(out / "documents.jsonl")}
    train_rows = _rows(out / "train.jsonl")
    assert 0 < len(train_rows) <= 60 and not list(tmp_path.glob(".teacher.partial"))
    pairs = {json.loads(line)["query"]: json.loads(line)["positive"] for line in pairs_jsonl.read_text().splitlines()}
    row = train_rows[0]
    assert len(row["document_ids"]) == len(row["scores"]) == 4
    assert documents[row["document_ids"][0]] == pairs[queries[row["query_id"]]]  # the positive comes first
    texts = [(queries[row["query_id"]], documents[d]) for d in row["document_ids"]]
    np.testing.assert_allclose(row["scores"], CrossEncoder(str(cross_encoder)).predict(texts), rtol=1e-3, atol=1e-4)

    recipe = load_recipe({
        "kind": "sparse", "output_dir": str(tmp_path / "splade"), "model": {"name": str(tiny_modernbert),
                                                                         "max_seq_length": 48},
        "data": {"train": str(out), "format": "distillation"},
        "training": {"batch_size": 4, "max_steps": 2, "logging_steps": 1}})
    assert recipe.loss.name == "splade_distillation"
    model = train(recipe)
    assert any("loss" in h for h in json.loads((model / "train_log.json").read_text()))
    assert SparseEncoder(str(model), device="cpu").encode_query(["add two numbers"]).is_sparse


def test_teacher_scores_need_a_cross_encoder_and_a_new_folder(tmp_path, pairs_jsonl, cross_encoder):
    with pytest.raises(EmbedkitError, match="give --cross-encoder"):
        mine(pairs_jsonl, tmp_path / "t", "bm25", MiningOptions(teacher_scores=True))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(EmbedkitError, match="exists; teacher scores go to a new folder"):
        mine(pairs_jsonl, tmp_path / "mine", "bm25",
             MiningOptions(teacher_scores=True, cross_encoder=str(cross_encoder)))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
