"""`torchrun --nproc_per_node 2 -m embedkit train` of a kind: sparse recipe on CPU (gloo): both ranks train, rank 0
alone publishes a SparseEncoder folder once."""

from __future__ import annotations

import pytest

from tests.test_distributed import torchrun_train


@pytest.mark.slow  # two training processes (gloo), a few steps of a tiny SPLADE
def test_torchrun_sparse_train_publishes_once(tmp_path, tiny_modernbert, train_jsonl):
    import json

    from sentence_transformers import SparseEncoder

    output = torchrun_train(tmp_path, {
        "kind": "sparse", "output_dir": str(tmp_path / "splade"),
        "model": {"name": str(tiny_modernbert), "max_seq_length": 48},
        "data": {"train": str(train_jsonl), "max_samples": 32},
        "training": {"batch_size": 4, "max_steps": 2, "logging_steps": 1, "save_steps": 1000, "warmup_ratio": 0.0,
                     "packed": "off"},
    })
    manifest = json.loads((output / "embedkit.json").read_text())
    assert manifest["kind"] == "sparse" and manifest["recipe"]["loss"]["name"] == "splade"
    history = json.loads((output / "train_log.json").read_text())
    assert any("loss" in h for h in history)
    encoded = SparseEncoder(str(output), device="cpu").encode_document(["def f(): pass"])
    assert encoded.is_sparse and encoded.shape[1] == SparseEncoder(str(output)).get_embedding_dimension()
