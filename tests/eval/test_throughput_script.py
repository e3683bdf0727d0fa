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
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "embedkit_packed" in proc.stdout and "st_encode_b32" in proc.stdout
    (result,) = list(tmp_path.glob("throughput-*.json"))
    assert json.loads(result.read_text())
