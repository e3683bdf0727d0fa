"""`embedkit eval --benchmark paper` on replicas of every registered source: quirks, isolation, resume."""

from __future__ import annotations

import json
import shutil

import pytest

from embedkit.cli import main
from embedkit.data.benchmarks import GROUPS, resolve_benchmarks
from embedkit.evaluate import benchmark_runner
from embedkit.evaluate.benchmark_runner import results_path, run_benchmarks
from embedkit.evaluate.runner import EvalOptions

PAPER = [name for entry in resolve_benchmarks("paper") for name in (entry.members or (entry.name,))]


@pytest.fixture()
def replicas(benchmark_replicas, monkeypatch, embedkit_cache, local_hf_datasets_cache):
    """Every registered benchmark served from its local replica; the cache starts empty."""
    monkeypatch.setattr("embedkit.data.benchmarks.BENCHMARKS", benchmark_replicas)
    return embedkit_cache / "benchmarks"


@pytest.fixture()
def count_evaluations(monkeypatch):
    """The datasets ``run_benchmarks`` scores, in order; ``stop_after`` simulates a kill."""
    calls: list[str] = []
    state = {"stop_after": None}
    real = benchmark_runner.evaluate

    def counting(model, folder, options, dataset_name=None, **kwargs):
        if state["stop_after"] is not None and len(calls) == state["stop_after"]:
            raise KeyboardInterrupt  # killed midway
        calls.append(dataset_name)
        return real(model, folder, options, dataset_name=dataset_name, **kwargs)

    monkeypatch.setattr(benchmark_runner, "evaluate", counting)
    return calls, state


def test_paper_run_scores_every_dataset_then_resumes(replicas, tmp_path, count_evaluations):
    calls, state = count_evaluations
    out = tmp_path / "results"
    state["stop_after"] = 5
    with pytest.raises(KeyboardInterrupt):
        run_benchmarks("bm25", "paper", EvalOptions(), output_dir=out)
    assert calls == PAPER[:5] and len(list((out / "bm25").glob("*.json"))) == 5

    calls.clear()
    state["stop_after"] = None
    run = run_benchmarks("bm25", "paper", EvalOptions(), output_dir=out)
    assert calls == PAPER[5:]  # only the rest is scored
    assert [o.dataset for o in run.outcomes] == PAPER and len(PAPER) == 34
    assert [o.status for o in run.outcomes] == ["skipped"] * 5 + ["scored"] * 29 and not run.failed
    results = {o.dataset: o.result for o in run.outcomes}
    assert all(r["ndcg@10"] > 0.5 for r in results.values()), {d: r["ndcg@10"] for d, r in results.items()}

    # ArguAna's judged id that its corpus lacks is kept (it lowers the ideal-DCG-normalised score) and counted
    arguana = results["beir/arguana"]
    assert arguana["judged_missing"] == 1 and arguana["ndcg@10"] < 1.0
    assert arguana["self_hits"] == {"protocol": "beir", "dropped": True, "queries_with_self_hit": 1}
    # FiQA's empty documents stay in the scored corpus
    assert results["beir/fiqa"]["num_documents"] == 8 and results["beir/fiqa"]["judged_missing"] == 0
    # NFCorpus's quoted id, written by csv as "nfcorpus-""d2""", matches its document
    nf = json.loads(results_path(out, "bm25", "beir/nfcorpus").read_text())
    assert nf["judged_missing"] == 0 and nf["ndcg@10"] == pytest.approx(1.0)
    # pinned revisions reach the results: the hub commit, or the zip's md5
    assert results["mldr"]["dataset_source"]["revision"] == resolve_benchmarks("mldr")[0].revision
    assert results["csn/go"]["dataset_source"]["revision"] == resolve_benchmarks("csn/go")[0].revision
    assert len(results["beir/scifact"]["dataset_source"]["revision"]) == 32
    assert results["beir/msmarco"]["split"] == "dev"
    table = run.table
    assert "| **beir mean** |" in table and "| **csn mean** |" in table and "FAILED" not in table

    calls.clear()
    again = run_benchmarks("bm25", "paper", EvalOptions(), output_dir=out)
    assert calls == [] and {o.status for o in again.outcomes} == {"skipped"}
    run_benchmarks("bm25", "beir/scifact,mldr", EvalOptions(), output_dir=out, overwrite=True)
    assert calls == ["beir/scifact", "mldr"]
    calls.clear()
    run_benchmarks("bm25", "beir/scifact", EvalOptions(k=10), output_dir=out)  # other settings: scored again
    assert calls == ["beir/scifact"]


def test_failures_are_isolated_reported_and_exit_non_zero(replicas, tmp_path, capsys, caplog):
    # a source that cannot be read (StackOverflow-QA), and a set whose qrels do not match its corpus (csn/go)
    shutil.rmtree(resolve_benchmarks("sqa")[0].source)
    csn_go = replicas / "csn" / "go"
    from embedkit.data.benchmark_sources import materialize

    materialize(resolve_benchmarks("csn/go")[0])
    (csn_go / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\ncsn-go-q0\tnot-in-corpus\t1\n")
    code = main(["eval", "--model", "bm25", "--benchmark", "csn,sqa,beir/scifact", "--output-dir",
                 str(tmp_path / "res")])
    assert code == 1
    table = capsys.readouterr().out
    assert "| csn/go | **FAILED** |" in table and "| coir/stackoverflow-qa | **FAILED** |" in table
    assert "1 of the 1 judged document ids are not in the corpus" in table
    assert "| csn/python | " in table and "| beir/scifact |" in table
    assert "| **csn mean** (5/6 sets) |" in table
    saved = sorted(p.name for p in (tmp_path / "res" / "bm25").glob("*.json"))
    assert saved == sorted(["beir__scifact.json"] + [f"csn__{lang}.json" for lang in
                                                      ("python", "javascript", "ruby", "java", "php")])
    assert "[3/8] csn/go: FAILED" in caplog.text and "[8/8] beir/scifact: nDCG@10" in caplog.text


def test_mteb_protocol_keeps_self_hits_where_mteb_does(replicas, tmp_path):
    from embedkit.data.benchmark_sources import materialize
    from embedkit.evaluate.runner import evaluate

    folder = materialize(resolve_benchmarks("beir/arguana")[0])
    as_arguana = evaluate("bm25", folder, EvalOptions(protocol="mteb"), dataset_name="beir/arguana")
    as_other = evaluate("bm25", folder, EvalOptions(protocol="mteb"), dataset_name="beir/scifact")
    assert as_arguana["self_hits"]["dropped"] and not as_other["self_hits"]["dropped"]
    assert as_other["self_hits"]["queries_with_self_hit"] == 1 and as_other["protocol"] == "mteb"
    # the self-hit outranks the judged document, so keeping it costs that query
    assert as_other["ndcg@10"] < as_arguana["ndcg@10"]


def test_paper_group_is_what_the_replicas_cover():
    assert set(PAPER) >= {"beir/arguana", "beir/fiqa", "mldr", "csn/python", "coir/stackoverflow-qa"}
    assert GROUPS["paper"][-1] == "coir/stackoverflow-qa"


def test_qrels_are_checked_before_the_model_is_even_loaded(tmp_path, make_beir):
    from embedkit.errors import EmbedkitError
    from embedkit.evaluate.runner import evaluate

    folder = make_beir(tmp_path / "wrong", [("d1", "text")], [("q1", "text")], [("q1", "elsewhere", 1)])
    with pytest.raises(EmbedkitError, match="1 of the 1 judged document ids are not in the corpus"):
        evaluate(str(tmp_path / "no-such-model"), folder)  # the model error would come later


# --- CoIR sets scored as CoIR (and the paper) score them -------------------------------------------------

def test_coir_sets_read_text_without_title_and_test_queries_only(replicas, tmp_path):
    """The replicas' CoIR documents have titles, and their queries config repeats a test query's id in the
    train partition (listed first): the test query is kept, once; documents are their text alone, as CoIR
    encodes them; BEIR sets keep title + text; the choice is recorded in every result."""
    import json

    from embedkit.data.beir import load_beir
    from embedkit.data.benchmark_sources import materialize

    run = run_benchmarks("bm25", "csn/python,beir/scifact", EvalOptions(), output_dir=tmp_path / "res")
    assert not run.failed, run.table
    results = {o.dataset: o.result for o in run.outcomes}
    assert results["csn/python"]["document_text"] == "text"
    assert resolve_benchmarks("sqa")[0].document_text == "text"  # (its replica is removed by another test)
    assert results["beir/scifact"]["document_text"] == "title+text"
    assert results["csn/python"]["settings"]["document_text"] == "text"

    folder = materialize(resolve_benchmarks("csn/python")[0])
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    assert [q["_id"] for q in queries] == [f"csn-python-q{i}" for i in range(6)]  # once each, test partition
    assert queries[0]["text"] != "a train query that reuses a test id"
    manifest = json.loads((folder / "benchmark.json").read_text())
    assert manifest["document_text"] == "text" and manifest["queries_partition"] == "test"
    corpus = dict(load_beir(folder, titles=False).corpus)
    assert corpus["csn-python-d0"] == "csn-python text about parse and read"  # the title "parse note" is left out
    assert dict(load_beir(folder).corpus)["csn-python-d0"].startswith("parse note ")

    mteb = run_benchmarks("bm25", "csn/python", EvalOptions(protocol="mteb"), output_dir=tmp_path / "mteb")
    (outcome,) = mteb.outcomes
    assert outcome.result["document_text"] == "title+text"  # MTEB joins title and text on every task
    assert outcome.result["settings_key"] != results["csn/python"]["settings_key"]
