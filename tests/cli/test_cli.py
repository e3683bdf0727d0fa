"""The commands end to end, as a user runs them."""

import json

import pytest

from embedkit.cli import main


def test_train_index_search_eval(tmp_path, tiny_modernbert, train_jsonl, code_beir, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"kind: dense\noutput_dir: {tmp_path / 'run'}\nmodel: {{name: {tiny_modernbert}, "
                      f"max_seq_length: 64}}\ndata: {{train: {train_jsonl}}}\n"
                      "training: {batch_size: 16, max_steps: 2, learning_rate: 1.0e-3}\n")
    assert main(["train", str(recipe), "--set", "training.seed=3"]) == 0
    model = str(tmp_path / "run")
    assert main(["index", "--model", model, "--corpus", str(code_beir), "--index-dir", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    assert main(["search", "--index-dir", str(tmp_path / "idx"), "--json", "-k", "3", "read a file"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert len(hits) == 3 and {"id", "score", "text"} <= set(hits[0])
    out = tmp_path / "results.json"
    assert main(["eval", "--model", model, "--data", str(code_beir), "--output", str(out),
                 "--run-file", str(tmp_path / "run.trec"), "--index-dir", str(tmp_path / "idx")]) == 0
    assert "into the cache" not in capsys.readouterr().err  # the index's vectors: nothing encoded again
    result = json.loads(out.read_text())
    assert result["max_length"] == 64  # what the model read: its own length (the recipe's), not null
    assert {"ndcg@10", "recall@100", "mrr@10", "map@100"} <= set(result)
    assert result["num_queries"] == 200 and result["kind"] == "dense"
    assert len((tmp_path / "run.trec").read_text().splitlines()) == 200 * 100


def test_bm25_baseline(tmp_path, code_beir):
    out = tmp_path / "bm25.json"
    assert main(["eval", "--model", "bm25", "--data", str(code_beir), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["ndcg@10"] > 0.2  # docstring words recur in the code


def test_eval_of_minilm_matches_sentence_transformers_exact_search(minilm_path, code_beir):
    """The issue's acceptance check, on real code-search data: same nDCG@10 as ST + pytrec_eval."""
    import pytrec_eval
    from sentence_transformers import SentenceTransformer, util

    from embedkit.data.beir import load_beir
    from embedkit.evaluate.runner import evaluate

    ours = evaluate(minilm_path, code_beir)["ndcg@10"]
    data = load_beir(code_beir)
    docs = list(data.corpus)
    model = SentenceTransformer(minilm_path, device="cpu")
    doc_emb = model.encode([t for _, t in docs], convert_to_tensor=True)
    qids = list(data.queries)
    hits = util.semantic_search(model.encode([data.queries[q] for q in qids], convert_to_tensor=True), doc_emb,
                                top_k=100)
    run = {q: {docs[h["corpus_id"]][0]: h["score"] for h in hs} for q, hs in zip(qids, hits)}
    scores = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10"}).evaluate(run)
    reference = sum(s["ndcg_cut_10"] for s in scores.values()) / len(scores)
    assert abs(ours - reference) < 0.002


def test_benchmarks_listed(capsys):
    assert main(["benchmarks"]) == 0
    out = capsys.readouterr().out
    for name in ("beir/scifact", "beir/cqadupstack", "mldr", "csn/python", "coir/stackoverflow-qa", "beir-dev4"):
        assert name in out


def test_benchmark_with_local_data(tmp_path, code_beir, capsys):
    assert main(["eval", "--model", "bm25", "--benchmark", "csn/python", "--data", str(code_beir),
                 "--output-dir", str(tmp_path / "res")]) == 0
    saved = json.loads((tmp_path / "res" / "bm25" / "csn__python.json").read_text())
    assert saved["dataset"] == "csn/python" and "| csn/python |" in capsys.readouterr().out


def test_user_errors_exit_2_without_traceback(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embedkit: error:") and "Traceback" not in err


@pytest.mark.parametrize("setting,column", [("id", "BM25 MLDR-ID"), ("ood", "BM25 MLDR-OOD")])
def test_mldr_setting_reaches_the_report(tmp_path, code_beir, capsys, setting, column):
    assert main(["eval", "--model", "bm25", "--benchmark", "mldr", "--data", str(code_beir),
                 "--output-dir", str(tmp_path / "res"), "--mldr-setting", setting]) == 0
    saved = json.loads((tmp_path / "res" / "bm25" / "mldr.json").read_text())
    assert saved["mldr_setting"] == setting
    assert main(["report", str(tmp_path / "res"), "--output", str(tmp_path / "report")]) == 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| model |"))  # the paper table
    row = next(line for line in markdown.splitlines() if line.startswith("| bm25 |"))
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    found = {name: value for name, value in cells.items() if "MLDR" in name}
    assert found[next(n for n in found if column in n)] == f"{100 * saved['ndcg@10']:.1f}", (found, markdown)


def test_csn_results_carry_no_mldr_setting(tmp_path, code_beir):
    assert main(["eval", "--model", "bm25", "--benchmark", "csn/python", "--data", str(code_beir),
                 "--output-dir", str(tmp_path / "res"), "--mldr-setting", "id"]) == 0
    assert "mldr_setting" not in json.loads((tmp_path / "res" / "bm25" / "csn__python.json").read_text())


def test_help_describes_the_tool(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "embedkit run recipe.yaml" in out and "retriever" in out and "quickstart" in out


def test_index_and_eval_flags_are_the_recipe_fields(capsys):
    """A flag parses into the typed field of the recipe section (same choices, same validation)."""
    from embedkit.cli import build_parser
    from embedkit.cli.fields import from_args
    from embedkit.config import EvalOptions, IndexConfig

    args = build_parser().parse_args(["index", "--corpus", "c.jsonl", "--backend", "ivfpq", "--nprobe", "8",
                                      "--index-dir", "out", "--n-full-scores", "100"])
    cfg = from_args(args, IndexConfig, "index")
    assert (cfg.backend, cfg.faiss.nprobe, cfg.output_dir, cfg.plaid.n_full_scores) == ("ivfpq", 8, "out", 100)
    assert cfg.faiss.hnsw_m == IndexConfig().faiss.hnsw_m  # unset flags keep the recipe defaults
    args = build_parser().parse_args(["eval", "--model", "bm25", "-k", "20", "--no-cache", "--protocol", "mteb"])
    options = from_args(args, EvalOptions, "eval")
    assert (options.k, options.use_cache, options.protocol) == (20, False, "mteb")
    args = build_parser().parse_args(["index", "--batch-size", "many"])
    with pytest.raises(Exception, match="batch_size: expected an integer"):
        from_args(args, IndexConfig, "index")


def test_list_fields_take_several_values():
    """A list-typed field is one flag with several values, on eval (nested eval.retrieve) and on search."""
    from embedkit.cli import build_parser
    from embedkit.cli.fields import from_args
    from embedkit.cli.options import retrieve_config
    from embedkit.config import EvalOptions

    args = build_parser().parse_args(["eval", "--model", "m", "--fuse-with", "bm25", "other-index",
                                      "--fusion", "weighted", "--weights", "0.3", "0.7"])
    retrieve = from_args(args, EvalOptions, "eval").retrieve
    assert (retrieve.fuse_with, retrieve.fusion, retrieve.weights) == (["bm25", "other-index"], "weighted", [0.3, 0.7])
    args = build_parser().parse_args(["search", "a query", "--index-dir", "ix", "--fuse-with", "bm25", "b"])
    assert retrieve_config(args).fuse_with == ["bm25", "b"]


@pytest.mark.slow  # two fresh processes that import torch and load a model
def test_quiet_by_default_verbose_with_v(tmp_path, tiny_modernbert, code_beir):
    """The dependencies' notices (transformers' "Loading weights" bars, debug lines, load reports) are hidden
    unless -v; stdout holds the result alone either way."""
    import os
    import subprocess
    import sys

    quieting = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY",
                "TRANSFORMERS_NO_ADVISORY_WARNINGS")  # set in this process by earlier in-process main() calls
    env = {k: v for k, v in os.environ.items() if k not in quieting}
    env.update(HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "embedkit", "eval", "--model", str(tiny_modernbert), "--data", str(code_beir),
           "-k", "10", "--no-cache", "--packed", "off"]
    quiet = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert json.loads(quiet.stdout)["ndcg@10"] >= 0  # stdout is the result alone
    for noise in ("mean pooling", "LOAD REPORT", "Loading weights", "DEBUG", "INFO"):
        assert noise not in quiet.stderr, noise
    loud = subprocess.run([cmd[0], "-m", "embedkit", "-v", *cmd[3:]], env=env, capture_output=True, text=True,
                          timeout=600)
    assert loud.returncode == 0 and "Loading weights" in loud.stderr and "DEBUG datasets:" in loud.stderr
    assert json.loads(loud.stdout)["k"] == 10  # with -v too, the logs stay on stderr


# --- errors before work -----------------------------------------------------------------------------------

def test_missing_local_corpus_fails_fast_before_any_model_loads(tmp_path):
    """`embedkit index --corpus data/nothere`: exit 2 with 'no such local path' (then why the Hub, which the
    path could also name, could not help), before torch, transformers or sentence-transformers are imported."""
    import os
    import subprocess
    import sys
    import time

    (tmp_path / "data").mkdir()
    probe = ("import sys\nfrom embedkit.cli import main\nrc = main(['index', '--corpus', 'data/nothere'])\n"
             "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
             "print('loaded:', heavy)\nsys.exit(rc)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert time.monotonic() - start < 60  # a generous guard: the check itself takes well under a second
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == "loaded: []"
    assert done.stderr.startswith("embedkit: error: --corpus: no such local path: data/nothere;")
    assert "Hugging Face dataset id" in done.stderr and "HF_HUB_OFFLINE" in done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.glob("index*"))


@pytest.mark.parametrize("argv, message", [
    (["index", "--corpus", "no_such.jsonl", "--model", "bm25", "--backend", "bm25"],
     "--corpus: no such local path: no_such.jsonl"),
    (["eval", "--model", "bm25", "--data", "nowhere"], "--data: no such local path: nowhere"),
    (["eval", "--model", "runs/nothere", "--data", "."],
     "--model: no such local path: runs/nothere; read as a Hugging Face model id"),
    (["search", "--index-dir", "missing-index", "a query"], "--index-dir: no such local path: missing-index"),
    (["report", "no-results"], "results: no such local path: no-results"),
])
def test_missing_paths_are_named_as_such(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"embedkit: error: {message}"), err


def test_misspelled_eval_data_in_a_recipe_is_named_before_work(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {name: bm25}\neval: {data: [data/nothere]}\n")
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "eval.data[0]: no such local path: data/nothere, and no benchmark of that name" in err


def test_eval_prints_metrics_named_by_depth(tmp_path, code_beir, capsys):
    assert main(["eval", "--model", "bm25", "--data", str(code_beir), "-k", "10", "--output",
                 str(tmp_path / "r.json")]) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert {"ndcg@10", "recall@10", "mrr@10", "map@10"} <= set(printed) and printed["k"] == 10
    assert "recall@100" not in printed and "recall@100" not in json.loads((tmp_path / "r.json").read_text())
    assert f"results written to {tmp_path / 'r.json'}" in err
    assert "indexing the corpus for evaluation into the cache" in err  # says where it writes


def test_report_command_writes_and_prints(tmp_path, code_beir, capsys):
    assert main(["eval", "--model", "bm25", "--data", str(code_beir), "--output",
                 str(tmp_path / "res" / "r.json")]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "res"), "--output", str(tmp_path / "rep"), "--metric", "recall@k"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# Retrieval results\n\nRecall@100 ×100") and "| code-beir" in out
    assert str(tmp_path / "rep" / "report.png") in err and (tmp_path / "rep" / "report.png").is_file()


# --- help for users ---------------------------------------------------------------------------------------

def _subparsers():
    import argparse

    from embedkit.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_sub_command_has_a_description_and_an_example():
    for name, sub in _subparsers().items():
        assert sub.description and len(sub.description) > 40, name
        assert sub.epilog and sub.epilog.startswith("examples:\n  embedkit " + name), name


def test_every_flag_has_help_and_defaults_read_as_typed():
    for name, sub in _subparsers().items():
        if name == "serve":  # its flags are being redone (issue 18)
            continue
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help and len(action.help) > 8, (name, action.option_strings or action.dest)
            text = action.help
            assert "(default: None)" not in text and "(default: [])" not in text and "(default: '" not in text, text
            assert "null =" not in text and "none =" not in text and "turn off:" not in text, text
    eval_help = _subparsers()["eval"].format_help()
    assert "(default: auto)" in eval_help.replace("\n", " ").replace("  ", " ") or "(default:" in eval_help
    index_help = _subparsers()["index"].format_help()
    for group in ("corpus and index folder", "encoding", "index backend", "FAISS options", "PLAID options (colbert"):
        assert group in index_help, group
    search_help = _subparsers()["search"].format_help()
    assert "fusion:" in search_help and "reranking:" in search_help


def test_packed_flag_is_the_encode_settings_field():
    """--packed on index and eval is EncodeSettings.packed: the recipe's index.packed / eval.packed."""
    from embedkit.cli import build_parser
    from embedkit.cli.fields import from_args
    from embedkit.config import EvalOptions, IndexConfig

    parse = build_parser().parse_args
    cfg = from_args(parse(["index", "--corpus", "c.jsonl", "--packed", "off"]), IndexConfig, "index")
    assert cfg.packed == "off"
    assert from_args(parse(["index", "--corpus", "c.jsonl"]), IndexConfig, "index").packed == "auto"
    options = from_args(build_parser().parse_args(["eval", "--model", "bm25", "--packed", "on"]), EvalOptions, "eval")
    assert options.packed == "on"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--model", "bm25", "--packed", "yes"])
