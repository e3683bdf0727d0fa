"""ColBERT training with this environment's ColBERT library (sentence-transformers' MultiVectorEncoder, or
PyLate): a tiny random ModernBERT learns (loss falls), saves, reloads in the library's own class with the
same token vectors as embedkit's encoder; the distillation layout (queries / documents / train with teacher
scores) trains too; the cached loss is the plain one with less memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedkit.train.recipes import load_recipe
from tests.helpers import write_code_beir


def _losses(history: list[dict]) -> list[float]:
    return [h["loss"] for h in history if "loss" in h]


def _recipe(model_path: Path, data_path: Path, out: Path, **sections) -> dict:
    raw = {
        "kind": "colbert", "output_dir": str(out),
        "model": {"name": str(model_path)},
        "colbert": {"embedding_dim": 16, "query_length": 16, "document_length": 48},
        "data": {"train": str(data_path)},
        "loss": {"name": "contrastive"},
        "training": {"learning_rate": 2e-3, "batch_size": 8, "max_steps": 24, "warmup_ratio": 0.0,
                     "logging_steps": 4, "save_steps": 1000, "scheduler": "constant_with_warmup", "packed": "off"},
        "eval": {"packed": "off"},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


@pytest.fixture()
def pairs_jsonl(tmp_path, code_pairs) -> Path:
    """16 (query, positive) pairs repeated 6 times: a tiny model can memorise them quickly."""
    path = tmp_path / "pairs.jsonl"
    rows = code_pairs[300:316]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(6):
            for p in rows:
                f.write(json.dumps({"query": p.query, "positive": p.code}) + "\n")
    return path


@pytest.mark.colbert
@pytest.mark.slow  # ~14 s alone on 2 cores, 40+ s when the machine is shared
def test_contrastive_training_lowers_loss_and_reloads_in_its_library(tiny_modernbert, pairs_jsonl, tmp_path,
                                                                     colbert_library, native_colbert):
    import numpy as np

    from embedkit.index.encoders import load_encoder
    from embedkit.train.run import train

    recipe = load_recipe(_recipe(tiny_modernbert, pairs_jsonl, tmp_path / "colbert"))
    out = train(recipe)
    history = json.loads((out / "train_log.json").read_text())
    losses = _losses(history)
    assert len(losses) >= 4
    assert losses[-1] < 0.7 * losses[0], losses
    manifest = json.loads((out / "embedkit.json").read_text())
    assert manifest["kind"] == "colbert"
    assert manifest["colbert_library"] == colbert_library.name and manifest["colbert_library_version"]

    reloaded = native_colbert(out)  # MultiVectorEncoder(out) or pylate.models.ColBERT(out)
    assert reloaded.query_length == 16 and reloaded.document_length == 48
    texts = ["def read(path):\n    return open(path).read()", "class Stack:\n    def push(self, x): ..."]
    query = reloaded.encode_queries(["read a file"])[0]
    docs = reloaded.encode_documents(texts)
    assert query.shape == (16, 16)        # [MASK]-expanded to query_length, 16-d projection
    assert docs[0].shape[1] == 16 and docs[0].shape[0] < 48
    # the library's own class and embedkit's encoder give the same token vectors
    ours = load_encoder("colbert", str(out))  # packed documents (ModernBERT): the same vectors
    np.testing.assert_allclose(ours.encode_queries(["read a file"])[0], query, atol=1e-5)
    for got, want in zip(ours.encode_documents(texts), docs):
        np.testing.assert_allclose(got, want, atol=1e-5)

    from embedkit.index.build import detect_kind

    assert detect_kind(str(out)) == "colbert"


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


@pytest.fixture()
def kd_folder(tmp_path, code_pairs) -> Path:
    """The lightonai/ms-marco-en-bge layout in miniature: queries, documents, train (teacher scores)."""
    folder = tmp_path / "kd"
    folder.mkdir()
    pairs = code_pairs[320:344]
    _write_jsonl(folder / "queries.jsonl", [{"query_id": f"q{i}", "text": p.query} for i, p in enumerate(pairs)])
    _write_jsonl(folder / "documents.jsonl", [{"document_id": f"d{i}", "text": p.code} for i, p in enumerate(pairs)])
    rows = []
    for i in range(len(pairs)):
        ids = [f"d{i}", f"d{(i + 1) % len(pairs)}", f"d{(i + 5) % len(pairs)}", f"d{(i + 9) % len(pairs)}"]
        rows.append({"query_id": f"q{i}", "document_ids": ids, "scores": [0.95, 0.3, 0.2, 0.1]})
    _write_jsonl(folder / "train.jsonl", rows * 3)
    return folder


@pytest.mark.colbert
@pytest.mark.slow  # ~12 s alone on 2 cores, 35+ s when the machine is shared
def test_distillation_on_local_kd_layout(tiny_modernbert, kd_folder, tmp_path):
    from embedkit.train.run import train

    raw = _recipe(tiny_modernbert, kd_folder, tmp_path / "kd-model", data={"format": "distillation"},
                  loss={"name": "distillation"}, training={"max_steps": 18, "batch_size": 4, "logging_steps": 3})
    out = train(load_recipe(raw))
    losses = _losses(json.loads((out / "train_log.json").read_text()))
    assert len(losses) >= 3
    assert losses[-1] < losses[0], losses


@pytest.mark.colbert
def test_distillation_rows_hold_the_teacher_scores_in_order(tiny_modernbert, kd_folder, tmp_path, colbert_library):
    """Rows resolved from ids: the query's text, its documents' texts in the teacher's order, the scores."""
    from embedkit.train.colbert import load_distillation_data

    raw = _recipe(tiny_modernbert, kd_folder, tmp_path / "x", data={"format": "distillation"},
                  loss={"name": "distillation"})
    rows = load_distillation_data(load_recipe(raw).data, colbert_library)
    row = rows[1]
    queries = {json.loads(line)["query_id"]: json.loads(line)["text"]
               for line in (kd_folder / "queries.jsonl").read_text().splitlines()}
    documents = {json.loads(line)["document_id"]: json.loads(line)["text"]
                 for line in (kd_folder / "documents.jsonl").read_text().splitlines()}
    assert row["query"] == queries["q1"]
    texts = row["documents"] if "documents" in row else [row[f"document_{i}"] for i in range(1, 5)]
    assert texts == [documents[d] for d in ("d1", "d2", "d6", "d10")]
    assert row["scores"] == pytest.approx([0.95, 0.3, 0.2, 0.1])


@pytest.mark.colbert
def test_distillation_folder_missing_subset_names_it(tiny_modernbert, kd_folder, tmp_path, colbert_library):
    from embedkit.errors import EmbedkitError
    from embedkit.train.colbert import load_distillation_data

    (kd_folder / "documents.jsonl").unlink()
    raw = _recipe(tiny_modernbert, kd_folder, tmp_path / "x", data={"format": "distillation"},
                  loss={"name": "distillation"})
    with pytest.raises(EmbedkitError, match="documents"):
        load_distillation_data(load_recipe(raw).data, colbert_library)


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[2].glob("recipes/*colbert*.yaml")))
def test_colbert_recipes_load(path):
    from embedkit.train.recipes import load_recipe

    recipe = load_recipe(path)
    assert recipe.kind == "colbert"
    assert recipe.colbert.embedding_dim == 128 and recipe.colbert.query_length == 32



@pytest.mark.colbert
def test_eval_during_training_logs_maxsim_ndcg(tiny_modernbert, pairs_jsonl, tmp_path, code_pairs):
    from embedkit.train.run import train

    beir = write_code_beir(tmp_path / "dev", code_pairs[300:316])
    raw = _recipe(tiny_modernbert, pairs_jsonl, tmp_path / "with-eval", eval={"during_training": str(beir)},
                  training={"max_steps": 8, "eval_steps": 4, "save_steps": 4})
    out = train(load_recipe(raw))
    history = json.loads((out / "train_log.json").read_text())
    scores = [h["eval_maxsim_ndcg@10"] for h in history if "eval_maxsim_ndcg@10" in h]
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)


@pytest.mark.colbert
def test_cached_contrastive_matches_contrastive(tiny_modernbert, code_pairs, colbert_features):
    """GradCache changes memory, not the objective: same loss and same gradients as the plain loss (PyLate 1.6's
    cached loss needs embedkit's gradient scaling for this; sentence-transformers' matches as it is)."""
    import torch

    from embedkit.config import ColbertConfig, LossConfig, ModelConfig
    from embedkit.models.colbert import build_colbert_model
    from embedkit.train.losses import build_loss

    model = build_colbert_model(ModelConfig(name=str(tiny_modernbert)),
                                ColbertConfig(embedding_dim=16, query_length=16, document_length=32), device="cpu")
    rows = [{"query": p.query, "positive": p.code, "negative_1": q.code}
            for p, q in zip(code_pairs[400:408], code_pairs[410:418])]
    features = colbert_features(model, rows)
    results = []
    for name in ("contrastive", "cached_contrastive"):
        model.zero_grad()
        loss = build_loss(model, LossConfig(name=name, mini_batch_size=3))(features, None)
        loss.backward()
        grad = model[1].linear.weight.grad.clone()  # the projection
        results.append((loss.item(), grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-3, atol=1e-5)
