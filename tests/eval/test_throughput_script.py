"""eval/throughput.py is a benchmark, not a test: here it only has to run in its CI-sized form."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "eval" / "throughput.py"


@pytest.mark.slow
def test_small_throughput_run_writes_a_table_and_json(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--small", "--num-docs", "24", "--num-long-docs", "4",
                           "--gradcache-batch", "32", "--gradcache-mini-batch", "8", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for method in ("st_encode_b32", "embedkit_packed", "st_train_unpadded", "st_gradcache_unpadded",
                   "embedkit_index_cli"):
        assert f"| {method} |" in proc.stdout, method
    (result,) = list(tmp_path.glob("throughput-*.json"))
    rows = json.loads(result.read_text())["rows"]
    assert all(r["status"] == "ok" and r["tokens_per_s"] > 0 for r in rows)
    packed = [r for r in rows if r["method"] == "embedkit_packed"]
    assert len(packed) == 3 and all(r["extra"]["min_cosine_vs_st_b32"] > 0.999 for r in packed)
    (index,) = [r for r in rows if r["method"] == "embedkit_index_cli"]
    assert index["docs"] == 24 and index["tokens"] > 24
    gradcache = [r for r in rows if r["inputs"].startswith("gradcache")]
    assert {r["docs"] for r in gradcache} == {32} and all(r["extra"]["mini_batch"] == 8 for r in gradcache)


def test_rows_are_on_disk_as_soon_as_measured(tmp_path, monkeypatch):
    """A run cut short (a 10-minute GPU session) keeps every row measured before the cut."""
    spec = importlib.util.spec_from_file_location("throughput_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    results = module.Results(tmp_path / "t.json", {"device": "test"})
    results.add(module.Row("base", "short-variable", "st_encode_b32", 2, 10, 1.0, 10.0))
    results.add(module.Row("base", "short-variable", "embedkit_packed", 2, 10, 0.5, 20.0))
    saved = json.loads((tmp_path / "t.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["st_encode_b32", "embedkit_packed"]
    assert "| embedkit_packed |" in saved["table"] and "2.00" in saved["table"]  # ratio to st_encode_b32


@pytest.mark.slow
def test_host_only_run_measures_the_pipeline_beside_the_raw_tokenizer(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--host-only", "--small", "--host-texts", "300",
                           "--repeats", "1", "--host-threads", "1", "2", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result,) = list(tmp_path.glob("throughput-*-host-small.json"))
    saved = json.loads(result.read_text())
    rows = saved["rows"]
    assert saved["meta"]["cpu"] and {r["method"] for r in rows} == {
        "raw_tokenizer", "embedkit_host_pipeline", "embedkit_host_pipeline_fake_device"}
    assert len({r["tokens"] for r in rows}) == 1  # the same texts, the same tokens, for every row
    pipeline = [r for r in rows if r["method"] == "embedkit_host_pipeline"]
    assert [r["extra"]["threads"] for r in pipeline] == [1, 2] and "vs_first_threads" in pipeline[1]["extra"]
    assert all("overlap" in r["extra"] for r in rows if r["method"].endswith("_fake_device"))  # a figure, not a test
    assert "| raw_tokenizer |" in proc.stdout and "× raw parallel" in proc.stdout


@pytest.mark.slow
def test_gpu_session_dry_run_does_every_step_on_cpu(tmp_path):
    """The GPU check's script, in its CPU form: versions, the GPU tests (skipped), the throughput rows written."""
    script = SCRIPT.parent / "gpu_session.sh"
    proc = subprocess.run(["bash", str(script), "--dry-run", str(tmp_path)], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "gpu session: rc=0" in proc.stdout
    assert "sentence-transformers" in (tmp_path / "gpu-versions.txt").read_text()
    (result,) = list(tmp_path.glob("throughput-*.json"))
    methods = {r["method"] for r in json.loads(result.read_text())["rows"]}
    assert {"st_encode_b32", "embedkit_packed", "st_train", "st_train_unpadded", "embedkit_index_cli"} <= methods
