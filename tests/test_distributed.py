"""`torchrun --nproc_per_node 2 -m embedkit index` on CPU (gloo) builds the same index as one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedkit.cli import main
from tests.helpers import write_word_corpus

NUM_DOCS, SHARD_SIZE = 500, 40  # 13 shards: rank 0 encodes 7, rank 1 encodes 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, nproc: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), "-m", "embedkit", *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def corpus(tmp_path) -> Path:
    return write_word_corpus(tmp_path / "corpus.jsonl", NUM_DOCS, words_per_doc=16)


@pytest.mark.slow  # two processes that import torch, plus the single-process reference
def test_torchrun_index_equals_single_process(tmp_path, corpus, tiny_modernbert):
    from embedkit.index.build import open_index

    common = ["--model", tiny_modernbert, "--corpus", corpus, "--shard-size", SHARD_SIZE, "--batch-size", 16]
    out = torchrun("index", *common, "--index-dir", tmp_path / "dist")
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.splitlines() == [str(tmp_path / "dist")]  # rank 0 alone prints the index folder
    assert not (tmp_path / "dist.partial").exists()
    assert main(["index", *map(str, common), "--index-dir", str(tmp_path / "single")]) == 0

    dist, single = open_index(tmp_path / "dist"), open_index(tmp_path / "single")
    assert list(dist.store.ids) == list(single.store.ids) == [f"d{i}" for i in range(NUM_DOCS)]
    np.testing.assert_allclose(dist.faiss.reconstruct_n(0, NUM_DOCS), single.faiss.reconstruct_n(0, NUM_DOCS),
                               atol=1e-5)
    queries = ["read a file", "merge and sort", "socket buffer stream"]
    for got, want in zip(dist.search(queries, k=10), single.search(queries, k=10)):
        assert [h.id for h in got] == [h.id for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-5)


@pytest.mark.slow
def test_torchrun_failure_is_one_clear_error_on_every_rank(tmp_path, corpus, tiny_modernbert):
    (tmp_path / "taken").mkdir()  # a folder of the user's: never replaced, not even with --overwrite
    out = torchrun("index", "--model", tiny_modernbert, "--corpus", corpus, "--index-dir", tmp_path / "taken")
    assert out.returncode != 0
    assert "taken holds no embedkit-index.json" in out.stderr


def test_resume_with_another_number_of_processes_lists_each_shard_once(tmp_path):
    from embedkit.artifacts import write_json
    from embedkit.index.encode import list_shards

    shards = tmp_path / "shards"
    shards.mkdir()
    # run 1 (2 ranks) recorded shards 0, 2 (rank 0) and 1 (rank 1); run 2 (1 rank) redid 1 and did 3
    write_json(shards / "shards-rank0.json", {"settings": {}, "done": {"0": 4, "2": 4, "1": 4, "3": 2}})
    write_json(shards / "shards-rank1.json", {"settings": {}, "done": {"1": 4}})
    assert [(s.index, s.count) for s in list_shards(tmp_path)] == [(0, 4), (1, 4), (2, 4), (3, 2)]


def torchrun_train(tmp_path: Path, raw: dict) -> Path:
    """Write ``raw`` as a recipe, train it with two processes, check the folder was published once."""
    import yaml

    output = Path(raw["output_dir"])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = torchrun("train", recipe)
    assert out.returncode == 0, out.stderr[-4000:]
    assert output.is_dir() and not output.with_name(output.name + ".partial").exists()
    assert (output / "embedkit.json").is_file() and (output / "model.safetensors").is_file()
    assert not list(tmp_path.glob(f".{output.name}.old-*"))
    return output


@pytest.mark.slow  # two training processes (gloo), a few steps of a tiny model
def test_torchrun_train_publishes_once(tmp_path, tiny_modernbert, train_jsonl):
    output = torchrun_train(tmp_path, {
        "kind": "dense", "output_dir": str(tmp_path / "model"),
        "model": {"name": str(tiny_modernbert), "max_seq_length": 64},
        "data": {"train": str(train_jsonl), "max_samples": 32},
        "loss": {"name": "mnrl", "gather_across_devices": True},  # in-batch negatives from both processes
        "training": {"batch_size": 4, "max_steps": 2, "logging_steps": 1, "save_steps": 1000, "warmup_ratio": 0.0,
                     "packed": "off"},
    })
    from embedkit.models.dense import load_dense_model

    assert load_dense_model(str(output)).encode(["def f(): pass"]).shape == (1, 64)


@pytest.mark.colbert
@pytest.mark.slow  # two training processes (gloo), a few steps of a tiny ColBERT
def test_torchrun_colbert_train_publishes_once(tmp_path, tiny_modernbert, train_jsonl, colbert_library,
                                              native_colbert):
    """The same driver as dense: every rank trains, rank 0 alone saves, publishes and writes the manifest."""
    import json

    output = torchrun_train(tmp_path, {
        "kind": "colbert", "output_dir": str(tmp_path / "colbert"),  # no loss: the kind's default (contrastive)
        "model": {"name": str(tiny_modernbert)},
        "colbert": {"embedding_dim": 16, "query_length": 16, "document_length": 48},
        "data": {"train": str(train_jsonl), "max_samples": 32},
        "training": {"batch_size": 4, "max_steps": 2, "logging_steps": 1, "save_steps": 1000, "warmup_ratio": 0.0,
                     "packed": "off"},
    })
    manifest = json.loads((output / "embedkit.json").read_text())
    assert manifest["kind"] == "colbert" and manifest["recipe"]["loss"]["name"] == "contrastive"
    assert manifest["colbert_library"] == colbert_library.name
    reloaded = native_colbert(output)  # the library's own class
    assert reloaded.encode_documents(["def f(): pass"])[0].shape[1] == 16
