"""Sparse (SPLADE) training through embedkit's one driver: SpladeLoss over the sparse MNRL on a tiny ModernBERT,
inference-free and distillation variants, resume, the saved folder in sentence-transformers' SparseEncoder, and the
recipe errors (a non-MLM checkpoint, regulariser weights out of range)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe
from embedkit.train.run import train
from tests.helpers import count_steps, crash_at_save, trainer_with_callback


def sparse_recipe(tmp_path, model, train, **extra):
    raw = {"kind": "sparse", "output_dir": str(tmp_path / "model"),
           "model": {"name": str(model), "max_seq_length": 64},
           "data": {"train": str(train)},
           "training": {"learning_rate": 2e-3, "batch_size": 16, "max_steps": 8, "logging_steps": 2,
                        "save_steps": 4, "warmup_ratio": 0.0}}
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return load_recipe(raw)


def test_minimal_sparse_recipe_trains_and_loads_in_sparse_encoder(tmp_path, tiny_modernbert, train_jsonl):
    from sentence_transformers import SparseEncoder

    r = sparse_recipe(tmp_path, tiny_modernbert, train_jsonl)
    assert r.loss.name == "splade" and r.sparse.architecture == "splade"
    out = train(r)
    losses = [h["loss"] for h in json.loads((out / "train_log.json").read_text()) if "loss" in h]
    assert len(losses) >= 3 and np.isfinite(losses).all()
    model = SparseEncoder(str(out), device="cpu")
    emb = model.encode_document(["def add(a, b): return a + b"])
    assert emb.is_sparse and emb.shape[1] == model.get_embedding_dimension() > 1000
    assert json.loads((out / "embedkit.json").read_text())["kind"] == "sparse"


def test_inference_free_and_resume(tmp_path, tiny_modernbert, train_jsonl, monkeypatch):
    """An inference-free model (static query weights) trains; a run killed after its first checkpoint resumes."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer

    r = sparse_recipe(tmp_path, tiny_modernbert, train_jsonl, sparse={"architecture": "inference-free",
                                                                       "query_regularizer_weight": 0.0})
    from sentence_transformers.sparse_encoder import SparseEncoderTrainingArguments

    from embedkit.train import sparse as sparse_kind

    monkeypatch.setattr(sparse_kind.SparseTraining, "trainer_classes",
                        lambda self, model: (trainer_with_callback(SparseEncoderTrainer, crash_at_save()),
                                             SparseEncoderTrainingArguments))
    with pytest.raises(KeyboardInterrupt):
        train(r)
    assert (tmp_path / "model.partial" / "checkpoints" / "checkpoint-4").is_dir()
    steps_run = []
    monkeypatch.setattr(sparse_kind.SparseTraining, "trainer_classes",
                        lambda self, model: (trainer_with_callback(SparseEncoderTrainer, count_steps(steps_run)),
                                             SparseEncoderTrainingArguments))
    out = train(r)
    assert steps_run == [5, 6, 7, 8]  # continued after checkpoint-4, not restarted
    model = SparseEncoder(str(out), device="cpu")
    assert model.encode_query(["add two numbers"]).is_sparse


def test_distillation_from_teacher_scores(tmp_path, tiny_modernbert, code_pairs):
    folder = tmp_path / "kd"
    folder.mkdir()
    pairs = code_pairs[200:240]
    with open(folder / "queries.jsonl", "w") as f:
        for i, p in enumerate(pairs):
            f.write(json.dumps({"query_id": f"q{i}", "text": p.query}) + "\n")
    with open(folder / "documents.jsonl", "w") as f:
        for i, p in enumerate(pairs):
            f.write(json.dumps({"document_id": f"d{i}", "text": p.code[:300]}) + "\n")
    with open(folder / "train.jsonl", "w") as f:
        for i in range(len(pairs)):
            others = [f"d{(i + j) % len(pairs)}" for j in (1, 2, 3)]
            f.write(json.dumps({"query_id": f"q{i}", "document_ids": [f"d{i}", *others],
                                "scores": [9.0, 2.0, 1.0, 0.5]}) + "\n")
    r = sparse_recipe(tmp_path, tiny_modernbert, folder, data={"format": "distillation"},
                      training={"max_steps": 3, "batch_size": 8})
    assert r.loss.name == "splade_distillation"
    out = train(r)
    assert any("loss" in h for h in json.loads((out / "train_log.json").read_text()))


def test_regulariser_weights_out_of_range(tmp_path, tiny_modernbert, train_jsonl):
    with pytest.raises(EmbedkitError, match=r"sparse.document_regularizer_weight: must be in \[0, 1.0\]"):
        sparse_recipe(tmp_path, tiny_modernbert, train_jsonl, sparse={"document_regularizer_weight": 3.0})
    with pytest.raises(EmbedkitError, match=r"sparse.query_regularizer_weight"):
        sparse_recipe(tmp_path, tiny_modernbert, train_jsonl, sparse={"query_regularizer_weight": -1e-3})
    with pytest.raises(EmbedkitError, match="not a sparse loss"):
        sparse_recipe(tmp_path, tiny_modernbert, train_jsonl, loss={"name": "mnrl"})


def test_non_mlm_checkpoint_is_refused(tmp_path, train_jsonl):
    from transformers import GPT2Config

    folder = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=16, n_head=2).save_pretrained(folder)
    r = sparse_recipe(tmp_path, folder, train_jsonl)
    with pytest.raises(EmbedkitError, match="'gpt2' checkpoint, which has no masked-language head"):
        train(r)
    assert not (tmp_path / "model.partial").exists()


def test_csr_architecture_trains_with_the_csr_loss(tmp_path, tiny_modernbert, train_jsonl):
    from sentence_transformers import SparseEncoder

    r = sparse_recipe(tmp_path, tiny_modernbert, train_jsonl, sparse={"architecture": "csr"},
                      training={"max_steps": 2, "batch_size": 8})
    with pytest.raises(EmbedkitError, match="does not train sparse.architecture: csr; use csr"):
        train(r)
    r.loss.name = "csr"
    out = train(r)
    assert SparseEncoder(str(out), device="cpu").encode_document(["def f(): pass"]).is_sparse
