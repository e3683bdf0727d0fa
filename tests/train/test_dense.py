import json

import numpy as np
import pytest
import yaml

from embedkit.train.recipes import load_recipe
from embedkit.train.run import train
from tests.helpers import count_steps, crash_at_save, trainer_with_callback


def recipe(tmp_path, model, data, **training):
    return load_recipe({
        "output_dir": str(tmp_path / "model"),
        "model": {"name": str(model), "max_seq_length": 64, "query_prompt": "query: ", "document_prompt": "doc: "},
        "data": {"train": str(data)},
        "training": {"learning_rate": 2e-3, "batch_size": 16, "max_steps": 12, "logging_steps": 2,
                     "save_steps": 6, "warmup_ratio": 0.0, **training},
    })


def test_training_lowers_loss_and_reloads_in_sentence_transformers(tmp_path, tiny_modernbert, train_jsonl):
    from sentence_transformers import SentenceTransformer

    r = recipe(tmp_path, tiny_modernbert, train_jsonl)
    out = train(r)
    losses = [h["loss"] for h in json.loads((out / "train_log.json").read_text()) if "loss" in h]
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    model = SentenceTransformer(str(out), device="cpu")
    assert model.prompts["query"] == "query: " and model.max_seq_length == 64
    assert model.encode(["x"]).shape == (1, 64)
    assert yaml.safe_load((out / "recipe.yaml").read_text())["training"]["max_steps"] == 12
    assert "Trained with embedkit" in (out / "README.md").read_text()
    assert not (out / "checkpoints").exists() and not (tmp_path / "model.partial").exists()


def test_cached_mnrl_with_hard_negatives_and_eval(tmp_path, tiny_modernbert, train_jsonl, code_beir):
    r = load_recipe({**recipe(tmp_path, tiny_modernbert, train_jsonl, max_steps=3).to_dict(),
                     "loss": {"name": "cached_mnrl", "mini_batch_size": 4}, "eval": {"data": [str(code_beir)]}})
    out = train(r)
    metrics = json.loads((out / "metrics.json").read_text())[str(code_beir)]
    assert set(metrics) == {"ndcg@10", "recall@100", "mrr@10", "map@100"}
    assert 0.0 <= metrics["ndcg@10"] <= 1.0


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny_modernbert, train_jsonl, monkeypatch):
    """A run killed after its first checkpoint is continued, not restarted, by the same command."""
    from sentence_transformers import SentenceTransformerTrainer

    r = recipe(tmp_path, tiny_modernbert, train_jsonl)
    monkeypatch.setattr("sentence_transformers.SentenceTransformerTrainer",
                        trainer_with_callback(SentenceTransformerTrainer, crash_at_save()))
    with pytest.raises(KeyboardInterrupt):
        train(r)
    assert (tmp_path / "model.partial" / "checkpoints" / "checkpoint-6").is_dir()
    assert not (tmp_path / "model").exists()
    steps_run = []
    monkeypatch.setattr("sentence_transformers.SentenceTransformerTrainer",
                        trainer_with_callback(SentenceTransformerTrainer, count_steps(steps_run)))
    out = train(r)
    assert steps_run == [7, 8, 9, 10, 11, 12]  # continued after checkpoint-6, not restarted
    assert (out / "model.safetensors").is_file()
