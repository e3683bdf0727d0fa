"""eval/throughput.py is a benchmark, not a test: here it only has to run in its CI-sized form."""

import json
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
    for method in ("st_encode_b32", "embedkit_packed", "st_train_unpadded", "st_gradcache_unpadded"):
        assert f"| {method} |" in proc.stdout, method
    (result,) = list(tmp_path.glob("throughput-*.json"))
    rows = json.loads(result.read_text())["rows"]
    assert all(r["status"] == "ok" and r["tokens_per_s"] > 0 for r in rows)
    packed = [r for r in rows if r["method"] == "embedkit_packed"]
    assert len(packed) == 3 and all(r["extra"]["min_cosine_vs_st_b32"] > 0.999 for r in packed)
    gradcache = [r for r in rows if r["inputs"].startswith("gradcache")]
    assert {r["docs"] for r in gradcache} == {32} and all(r["extra"]["mini_batch"] == 8 for r in gradcache)
