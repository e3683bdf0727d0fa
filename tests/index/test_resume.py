"""Crash-safe, resumable encoding: SIGKILL `embedkit index` mid-run, run it again, get the same index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedkit.cli import main
from tests.helpers import write_word_corpus

NUM_DOCS = 3000
SHARD_SIZE = 30  # 100 shards: the run is still encoding when it is killed


@pytest.fixture()
def corpus(tmp_path, monkeypatch):
    import torch

    # One thread: on a shared 2-core machine a tiny model runs ~10x faster than with two spinning threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    yield write_word_corpus(tmp_path / "corpus.jsonl", NUM_DOCS, words_per_doc=24)
    monkeypatch.undo()
    torch.set_num_threads(threads)


def index_args(model, corpus, index_dir) -> list[str]:
    return ["index", "--model", str(model), "--corpus", str(corpus), "--index-dir", str(index_dir),
            "--shard-size", str(SHARD_SIZE), "--batch-size", "16"]


def recorded(state: Path) -> int:
    try:
        return len(json.loads(state.read_text(encoding="utf-8"))["done"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def kill_after_shards(args: list[str], state: Path, shards: int, timeout: float = 120) -> int:
    """Start `embedkit ARGS` in a subprocess and SIGKILL it once ``shards`` shards are recorded."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "embedkit", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while recorded(state) < shards:
            assert proc.poll() is None, f"embedkit index ended (rc {proc.returncode}) before it could be killed"
            assert time.monotonic() < deadline, "no shards recorded in time"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return recorded(state)


@pytest.mark.slow  # a subprocess that imports torch: ~10 s alone, 30+ s on a loaded 2-core machine
def test_killed_index_resumes_and_equals_an_uninterrupted_run(tmp_path, corpus, tiny_modernbert, monkeypatch):
    from embedkit.index import encode
    from embedkit.index.build import open_index

    index_dir = tmp_path / "index"
    state = tmp_path / "index.partial" / "shards" / "shards-rank0.json"
    before = kill_after_shards(index_args(tiny_modernbert, corpus, index_dir), state, shards=3)
    total = -(-NUM_DOCS // SHARD_SIZE)
    assert 3 <= before < total

    # A killed run leaves nothing that looks like an index: only <dir>.partial.
    assert not index_dir.exists()
    assert (tmp_path / "index.partial").is_dir()
    assert not (tmp_path / "index.partial" / "embedkit-index.json").exists()

    # Every recorded shard is complete on disk (files are written before the state records them).
    for number, count in json.loads(state.read_text())["done"].items():
        shard = encode.Shard(int(number), count, state.parent)
        assert shard.embeddings().shape[0] == count
        assert sum(1 for _ in shard.documents()) == count

    written = []
    real_write = encode._write_shard
    monkeypatch.setattr(encode, "_write_shard", lambda shard, *a: (written.append(shard.index), real_write(shard, *a)))
    assert main(index_args(tiny_modernbert, corpus, index_dir)) == 0
    assert len(written) == total - before          # only the missing shards were encoded again
    assert not (tmp_path / "index.partial").exists()

    reference_dir = tmp_path / "reference"
    assert main(index_args(tiny_modernbert, corpus, reference_dir)) == 0

    resumed, reference = open_index(index_dir), open_index(reference_dir)
    assert list(resumed.store.ids) == list(reference.store.ids) == [f"d{i}" for i in range(NUM_DOCS)]
    np.testing.assert_allclose(resumed.faiss.reconstruct_n(0, NUM_DOCS), reference.faiss.reconstruct_n(0, NUM_DOCS),
                               atol=1e-5)
    queries = ["read a file", "merge and sort", "socket buffer stream", "map filter reduce"]
    got, want = resumed.search(queries, k=10), reference.search(queries, k=10)
    for got_hits, want_hits in zip(got, want):
        assert [h.id for h in got_hits] == [h.id for h in want_hits]
        np.testing.assert_allclose([h.score for h in got_hits], [h.score for h in want_hits], atol=1e-5)
    assert resumed.store.text(5) == reference.store.text(5)


def test_resume_with_other_settings_is_refused(tmp_path, corpus, tiny_modernbert, capsys, monkeypatch):
    from embedkit.index import encode

    index_dir = tmp_path / "index"
    state = tmp_path / "index.partial" / "shards" / "shards-rank0.json"
    real_write = encode._write_shard

    def interrupted(shard, *args):  # Ctrl-C while the third shard is being written
        if shard.index == 2:
            raise KeyboardInterrupt
        real_write(shard, *args)

    monkeypatch.setattr(encode, "_write_shard", interrupted)
    assert main(index_args(tiny_modernbert, corpus, index_dir)) == 130
    assert recorded(state) == 2 and not index_dir.exists()
    monkeypatch.setattr(encode, "_write_shard", real_write)
    other = index_args(tiny_modernbert, corpus, index_dir)
    other[other.index("--shard-size") + 1] = str(SHARD_SIZE * 2)
    assert main(other) == 2
    assert "interrupted run with other settings" in capsys.readouterr().err
    assert not index_dir.exists()
    # --overwrite discards the stale work folder and builds from scratch
    assert main(other + ["--overwrite"]) == 0
    assert json.loads((index_dir / "embedkit-index.json").read_text())["num_documents"] == NUM_DOCS
