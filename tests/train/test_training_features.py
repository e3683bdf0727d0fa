"""Training features the paper's recipes rely on: mined negatives, several datasets in one run,
Matryoshka training + truncated indexes, evaluation during training with TensorBoard logs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe
from tests.helpers import write_code_beir


@pytest.fixture()
def small_beir(tmp_path, code_pairs) -> Path:
    return write_code_beir(tmp_path / "dev", code_pairs[:40], 12)


def _recipe(tmp_path, model, train, **sections):
    raw = {"kind": "dense", "output_dir": str(tmp_path / "model"),
           "model": {"name": str(model), "max_seq_length": 64},
           "data": {"train": str(train), "max_samples": 24},
           "training": {"batch_size": 8, "max_steps": 2, "logging_steps": 1, "save_steps": 1000,
                        "warmup_ratio": 0.0, "packed": "off"},
           "eval": {"packed": "off"}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return load_recipe(raw)


def test_mined_negatives_and_a_mix_of_datasets_train(tmp_path, tiny_modernbert, train_jsonl, code_pairs):
    from embedkit.train.mining import MiningOptions, mine
    from embedkit.train.run import train

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": p.query, "positive": p.code}) + "\n" for p in code_pairs[300:380]),
                     encoding="utf-8")
    mined = mine(pairs, tmp_path / "mined.jsonl", "bm25", MiningOptions(num_negatives=2, range_min=1, range_max=20))
    assert mined.rows_out > 8
    other = tmp_path / "other.jsonl"  # a second source with its own column names and no negatives
    other.write_text("".join(json.dumps({"q": p.query, "doc": p.code}) + "\n" for p in code_pairs[400:440]),
                     encoding="utf-8")
    for sampling in ("round_robin", "proportional"):
        recipe = _recipe(tmp_path, tiny_modernbert, mined.output,
                         data={"mix": [{"train": str(other), "columns": {"query": "q", "positive": "doc",
                                                                         "negatives": []}}],
                               "sampling": sampling})
        recipe.output_dir = str(tmp_path / f"mix-{sampling}")
        folder = train(recipe)
        log = json.loads((folder / "train_log.json").read_text(encoding="utf-8"))
        assert [h["loss"] for h in log if "loss" in h], "no loss logged"
        assert (folder / "model.safetensors").is_file() or any(folder.glob("**/model.safetensors"))
        # checkpoints are gone once published; the TensorBoard logs stay beside the model
        assert not (folder / "checkpoints").exists() and list((folder / "logs").rglob("events.out.tfevents.*"))


def test_mix_source_errors_name_the_source(tmp_path, tiny_modernbert, train_jsonl):
    from embedkit.train.data import load_training_data

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "answer": "b"}\n', encoding="utf-8")
    recipe = _recipe(tmp_path, tiny_modernbert, train_jsonl, data={"mix": [{"train": str(bad)}]})
    with pytest.raises(EmbedkitError, match="bad.jsonl: missing column"):
        load_training_data(recipe.data)


def test_matryoshka_model_indexes_at_a_truncated_size(tmp_path, tiny_modernbert, train_jsonl, small_beir,
                                                      embedkit_cache):
    import faiss

    from embedkit.cli import main
    from embedkit.evaluate.runner import EvalOptions, evaluate
    from embedkit.index.base import IndexManifest
    from embedkit.index.build import open_index
    from embedkit.train.run import train

    folder = train(_recipe(tmp_path, tiny_modernbert, train_jsonl, loss={"matryoshka_dims": [64, 32, 16]}))
    index_dir = tmp_path / "index16"
    assert main(["index", "--model", str(folder), "--corpus", str(small_beir), "--index-dir", str(index_dir),
                 "--truncate-dim", "16"]) == 0
    manifest = IndexManifest.load(index_dir)
    assert manifest.embedding_dim == 16 and manifest.settings["truncate_dim"] == 16
    faiss_files = [p for p in index_dir.iterdir() if p.suffix in (".faiss", ".index")]
    assert faiss_files and faiss.read_index(str(faiss_files[0])).d == 16
    index = open_index(index_dir, str(folder))  # queries are truncated to match, from the manifest
    assert len(index.search(["return the sum of two numbers"], k=3)[0]) == 3
    full = evaluate(str(folder), small_beir, EvalOptions(use_cache=True))
    small = evaluate(str(folder), small_beir, EvalOptions(use_cache=True, truncate_dim=16))
    assert 0 <= small["ndcg@10"] <= 1 and 0 <= full["ndcg@10"] <= 1
    cached = list((embedkit_cache / "indexes").iterdir())
    assert len(cached) == 2 and any("-dim16-" in p.name for p in cached)  # separate cache entries
    with pytest.raises(EmbedkitError, match="64 dimensions"):
        evaluate(str(folder), small_beir, EvalOptions(use_cache=False, truncate_dim=128))


def test_eval_during_training_logs_ndcg_and_tensorboard(tmp_path, tiny_modernbert, train_jsonl, small_beir,
                                                         monkeypatch):
    from embedkit.train.run import train

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "users-own-logs"))

    recipe = _recipe(tmp_path, tiny_modernbert, train_jsonl, eval={"during_training": str(small_beir)},
                     training={"eval_steps": 1, "save_steps": 1, "max_steps": 3})
    folder = train(recipe, keep_checkpoints=True)
    log = json.loads((folder / "train_log.json").read_text(encoding="utf-8"))
    ndcg = [k for h in log for k in h if k.startswith("eval_") and k.endswith("ndcg@10")]
    assert len(ndcg) >= 3 and any("loss" in h for h in log)
    events = list((folder / "logs").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event files under <output_dir>/logs"
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "users-own-logs")  # restored after training
    assert not (tmp_path / "users-own-logs").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(events[0].parent)).Reload().Tags()["scalars"]
    assert any(t.endswith("ndcg@10") for t in tags) and any(t.endswith("loss") for t in tags)
    states = sorted((folder / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    state = json.loads(states[-1].read_text(encoding="utf-8"))
    assert state["best_metric"] is not None and state["best_model_checkpoint"]  # best kept by nDCG@10
