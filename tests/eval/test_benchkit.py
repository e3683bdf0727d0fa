"""eval/benchkit: the helpers every eval/ script shares (imported here from the checkout as ``eval.benchkit``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedkit.data.beir import load_beir
from eval.benchkit import children, data, machine, memory, results, stats

EVAL = Path(__file__).resolve().parents[2] / "eval"
SCRIPTS = sorted(p.name for p in EVAL.glob("*.py") if p.name != "host_throughput.py")  # that one is throughput's


def _env() -> dict[str, str]:
    return children.checkout_env(HF_HUB_OFFLINE="1")


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help_with_its_flags(script):
    """Run as users run them (``python eval/<script>.py`` from the repository root): the shared helpers import."""
    proc = subprocess.run([sys.executable, f"eval/{script}", "--help"], capture_output=True, text=True, timeout=120,
                          cwd=EVAL.parent, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:") and "--" in proc.stdout


def test_machine_names_the_cpu_model_cores_and_gpu():
    from embedkit.models.precision import cpu_name

    text = machine.describe()
    assert text.startswith(cpu_name()) and f", {os.cpu_count()} CPUs, " in text
    assert text.endswith(machine.gpu_name() or "no GPU")
    facts = machine.facts()
    assert set(facts) == {"cpu", "cpus", "gpu", "load_average", "note"} and len(facts["load_average"]) == 3


@pytest.mark.parametrize("load, verdict", [(0.0, "nothing else was running"), (64.0, "other jobs shared the machine")])
def test_load_note_says_whether_other_jobs_shared_the_cores(monkeypatch, load, verdict):
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (load, 1.0, 1.0))
    assert machine.load_note() == f"load average {load:.1f} / 1.0 (1 / 5 min) at the end on {os.cpu_count()} CPUs"
    assert f"at the start on {os.cpu_count()} CPUs: {verdict}" in machine.load_note("at the start", verdict=True)
    assert machine.shared() is (load > 0)
    assert machine.facts()["note"].startswith("shared machine" if load else "nothing else")


def test_results_are_written_whole_with_their_folder(tmp_path):
    path = tmp_path / "deep" / "er" / "r.json"
    assert results.save({"rows": [1, 2]}, path) == path
    assert json.loads(path.read_text()) == {"rows": [1, 2]} and path.read_text().endswith("}\n")
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left beside it
    assert results.RESULTS == EVAL / "results"


def test_memory_and_percentiles():
    assert 0 < memory.rss_mb() <= memory.peak_rss_mb() + 1
    assert stats.percentile([5.0, 1.0, 4.0, 2.0, 3.0], 50) == 3.0 and stats.percentile([7.0], 99) == 7.0
    assert stats.percentile(list(map(float, range(101))), 95) == pytest.approx(95.0)


def test_a_child_reports_its_last_json_line_or_why_it_failed(tmp_path):
    script = tmp_path / "child.py"
    script.write_text("import json, sys\nprint('a log line')\nprint(json.dumps({'n': 1}))\n"
                      "print(json.dumps({'n': int(sys.argv[1])}))\n"
                      "if sys.argv[1] == '0': sys.exit('broken on purpose')\n")
    assert children.run_json_child(script, ["2"]) == {"n": 2}
    with pytest.raises(children.ChildFailed, match="broken on purpose") as failed:
        children.run_json_child(script, ["0"])
    assert failed.value.last_line == "broken on purpose"
    empty = tmp_path / "empty.py"
    empty.write_text("print('no json')\n")
    with pytest.raises(children.ChildFailed, match="no output"):
        children.run_json_child(empty, [])


def test_checkout_env_puts_this_checkout_first(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = children.checkout_env(EXTRA="1")
    assert env["PYTHONPATH"].split(os.pathsep) == [str(EVAL.parent), "/elsewhere"] and env["EXTRA"] == "1"
    port = children.free_port()
    assert 0 < port < 65536


def test_code_and_text_folders_load_as_beir_with_one_relevant_document_per_query(tmp_path):
    code = load_beir(data.build_folder(tmp_path / "code", 40, 5))
    assert len(list(code.corpus)) == 40 and len(code.queries) == 5
    ids = {doc_id for doc_id, _ in code.corpus}
    assert all(len(judged) == 1 and set(judged) <= ids for judged in code.qrels.values())
    text = load_beir(data.text_folder(tmp_path, 30, 4))
    assert text.folder.name == "stdlib-docstrings" and len(list(text.corpus)) == 30 and len(text.queries) == 4
    summaries = set(text.queries.values())
    assert not summaries & {t for _, t in text.corpus}  # the query is the summary, the document the rest


def test_a_tiny_colbert_crossover_run_writes_its_json(tmp_path):
    out = tmp_path / "cc.json"
    proc = subprocess.run([sys.executable, "eval/colbert_crossover.py", "--sizes", "40", "--queries", "4",
                           "--tokens", "8", "--output", str(out)], capture_output=True, text=True, timeout=300,
                          cwd=EVAL.parent, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads(out.read_text())
    assert saved["machine"] == machine.describe() and [r["documents"] for r in saved["rows"]] == [40]
    assert "| 40 |" in proc.stdout


@pytest.mark.slow
def test_a_tiny_compare_st_run_scores_each_configuration_in_its_own_process(tmp_path):
    out = tmp_path / "cs.json"
    proc = subprocess.run([sys.executable, "eval/compare_st.py", "--docs", "30", "--queries", "5", "--configs",
                           "st-fp32,embedkit-fp32", "--out", str(out)], capture_output=True, text=True, timeout=600,
                          cwd=EVAL.parent, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads(out.read_text())
    assert saved["docs"] == 30 and saved["machine"] == machine.describe() and saved["load"].startswith("load average")
    st, ours = saved["rows"]
    assert (st["config"], ours["config"]) == ("st-fp32", "embedkit-fp32")
    assert ours["ndcg@10"] == pytest.approx(st["ndcg@10"], abs=1e-3) and ours["seconds"] > 0
