"""`embedkit run`: four stages from one recipe, skipped when done, resumed after a kill in any stage."""

from __future__ import annotations

import json

import pytest

from embedkit.pipeline import parse_stages, run_pipeline
from embedkit.train.recipes import load_recipe
from tests.helpers import write_code_beir


class Killed(BaseException):
    """Stands for the process dying mid-stage (not an Exception: nothing may catch and carry on)."""


def kill_on_call(monkeypatch, target: str, call: int = 1, when=lambda *a, **k: True):
    """Patch ``target`` to die on its ``call``-th matching call; return the list of its calls."""
    import importlib

    module_name, attr = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    real = getattr(module, attr)
    calls = []

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            calls.append(args)
            if len(calls) == call:
                raise Killed(target)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, attr, wrapper)
    return calls


@pytest.fixture()
def small_beir(tmp_path, code_pairs):
    return write_code_beir(tmp_path / "beir", code_pairs[:100], 30)


def make_recipe(tmp_path, model, train, beir, *overrides):
    return load_recipe({
        "output_dir": str(tmp_path / "model"),
        "model": {"name": str(model), "max_seq_length": 64},
        "data": {"train": str(train)},
        "training": {"learning_rate": 2e-3, "batch_size": 16, "max_steps": 3, "warmup_ratio": 0.0,
                     "logging_steps": 1, "packed": "off"},
        "index": {"corpus": str(beir), "output_dir": str(tmp_path / "index"), "shard_size": 25,
                  "batch_size": 32, "packed": "off"},
        "eval": {"data": [str(beir)], "output_dir": str(tmp_path / "eval"), "batch_size": 32, "packed": "off"},
        "report": {"output_dir": str(tmp_path / "report"), "baselines": ["bm25"]},
    }, list(overrides))


@pytest.mark.slow  # trains the tiny model twice (a killed run and its resume) and encodes 100 documents
def test_run_resumes_after_a_kill_in_each_stage_then_skips(tmp_path, tiny_modernbert, train_jsonl, small_beir,
                                                           monkeypatch):
    recipe = make_recipe(tmp_path, tiny_modernbert, train_jsonl, small_beir)

    # train: killed while publishing the model
    kill_on_call(monkeypatch, "embedkit.train.run.write_json")
    with pytest.raises(Killed):
        run_pipeline(recipe)
    assert (tmp_path / "model.partial").is_dir() and not (tmp_path / "model").exists()
    monkeypatch.undo()

    # index: killed after the first of four shards; the rerun encodes only the other three
    in_stage = lambda shard, *a: shard.folder.parent.name == "index.partial"  # noqa: E731 (not eval's indexes)
    shards = kill_on_call(monkeypatch, "embedkit.index.encode._write_shard", call=2, when=in_stage)
    with pytest.raises(Killed):
        run_pipeline(recipe)
    assert (tmp_path / "model" / "embedkit.json").is_file() and (tmp_path / "index.partial").is_dir()
    monkeypatch.undo()
    shards = kill_on_call(monkeypatch, "embedkit.index.encode._write_shard", call=99, when=in_stage)

    # eval: killed while scoring the baseline, after the trained model's results were written
    scored = kill_on_call(monkeypatch, "embedkit.evaluate.runner.write_trec_run", call=2)
    with pytest.raises(Killed):
        run_pipeline(recipe)
    assert len(shards) == 3  # resumed: shard 0 came from the killed run
    assert (tmp_path / "index" / "embedkit-index.json").is_file()
    scored.clear()

    # report: killed while writing; the rerun scores only the baseline and writes the report
    kill_on_call(monkeypatch, "embedkit.evaluate.report.write_chart")
    with pytest.raises(Killed):
        run_pipeline(recipe)
    assert len(scored) == 1  # only bm25 was scored again
    monkeypatch.undo()

    result = run_pipeline(recipe)
    assert [(s.stage, s.status) for s in result.stages] == [
        ("train", "skipped (done)"), ("index", "skipped (done)"), ("eval", "skipped (done)"), ("report", "ran")]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "bm25" in report and (tmp_path / "report" / "report.png").is_file()
    assert {r["model"] for r in result.results} == {str(tmp_path / "model"), "bm25"}
    assert "| train | skipped (done) |" in result.table() and "nDCG@10" in result.table()
    trained = next(r for r in result.results if r["model"] == str(tmp_path / "model"))
    assert trained["backend"] == "flat" and trained["num_documents"] == 100

    # everything done: nothing runs; a changed eval key reruns eval and report only
    again = run_pipeline(recipe)
    assert {s.status for s in again.stages} == {"skipped (done)"}
    changed = run_pipeline(make_recipe(tmp_path, tiny_modernbert, train_jsonl, small_beir, "eval.k=20"))
    assert [s.status for s in changed.stages] == ["skipped (done)", "skipped (done)", "ran", "ran"]


def test_stages_parse_in_pipeline_order():
    assert parse_stages("report,train") == ("train", "report")
    assert parse_stages(None) == ("train", "index", "eval", "report")
    with pytest.raises(Exception, match="unknown stage 'serve'"):
        parse_stages("train,serve")


def test_recipe_without_training_data_scores_the_model_as_is(tmp_path, small_beir, capsys):
    """A recipe with only index/eval sections (here BM25: no model) runs through the CLI."""
    from embedkit.cli import main

    path = tmp_path / "bm25.yaml"
    path.write_text(json.dumps({
        "model": {"name": "bm25"},
        "index": {"corpus": str(small_beir), "backend": "bm25", "output_dir": str(tmp_path / "index")},
        "eval": {"data": [str(small_beir)], "output_dir": str(tmp_path / "eval")},
        "report": {"output_dir": str(tmp_path / "report")}}))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| train | off (no data.train" in out and "| index | ran |" in out and "| bm25 |" in out
    assert (tmp_path / "report" / "report.md").is_file()
    assert main(["run", str(path), "--stages", "eval"]) == 0
    assert "| eval | skipped (done) |" in capsys.readouterr().out


# --- a corpus is encoded once -----------------------------------------------------------------------------

@pytest.fixture()
def count_encoded(monkeypatch):
    """How many documents the dense encoder encodes (queries are not counted)."""
    from embedkit.models.dense import DenseEncoder

    counted: list[int] = []
    real = DenseEncoder.encode_documents

    def counting(self, texts):
        counted.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(DenseEncoder, "encode_documents", counting)
    return counted


def test_run_encodes_a_corpus_once_given_as_file_and_as_folder(tmp_path, tiny_modernbert, small_beir, monkeypatch,
                                                               count_encoded):
    """index.corpus is the corpus file (relative path), eval.data its BEIR folder (absolute): the same documents,
    so the eval stage searches the index stage's index; a backend change rebuilds it from the kept shards."""
    monkeypatch.chdir(tmp_path)
    raw = {"output_dir": "runs/tiny",
           "model": {"name": str(tiny_modernbert)},
           "index": {"corpus": "beir/corpus.jsonl", "max_length": 64, "shard_size": 40, "packed": "off"},
           "eval": {"data": [str(small_beir)], "max_length": 64, "k": 10, "packed": "off"}}
    result = run_pipeline(load_recipe(raw))
    assert sum(count_encoded) == 100  # the corpus's 100 documents, once
    assert [(s.stage, s.status) for s in result.stages][1:3] == [("index", "ran"), ("eval", "ran")]
    (scored,) = result.results
    assert "index" not in scored["seconds"] and scored["backend"] == "flat" and scored["num_documents"] == 100
    # relative outputs sit in the run folder beside output_dir, and the summary says where
    run = tmp_path / "runs" / "tiny-run"
    assert (run / "index" / "embedkit-index.json").is_file() and len(list((run / "eval").rglob("beir.json"))) == 1
    assert (run / "report" / "report.md").is_file() and "run folder: runs/tiny-run" in result.table()
    assert result.stages[2].artefact == "runs/tiny-run/eval"

    count_encoded.clear()
    again = run_pipeline(load_recipe(raw, ["index.backend=hnsw"]))
    assert [(s.stage, s.status) for s in again.stages][1:3] == [("index", "ran"), ("eval", "ran")]
    assert sum(count_encoded) == 0  # the shards kept in the index folder were reused, and the index searched
    assert again.results[0]["backend"] == "hnsw"
    assert again.results[0]["ndcg@10"] == pytest.approx(scored["ndcg@10"], abs=0.05)

    count_encoded.clear()
    edited = (tmp_path / "beir" / "corpus.jsonl").read_text().splitlines()
    first = json.loads(edited[0])
    edited[0] = json.dumps(first | {"text": first["text"] + " # edited"})
    (tmp_path / "beir" / "corpus.jsonl").write_text("\n".join(edited) + "\n")
    changed = run_pipeline(load_recipe(raw, ["index.backend=hnsw"]))
    assert [s.status for s in changed.stages][1:3] == ["ran", "ran"]
    assert sum(count_encoded) == 40  # only the shard holding the edited document is encoded again


def test_eval_k_names_metrics_by_depth_and_is_recorded(tmp_path, small_beir, capsys):
    from embedkit.cli import main

    recipe = tmp_path / "bm25.yaml"
    recipe.write_text(json.dumps({"output_dir": str(tmp_path / "bm25"), "model": {"name": "bm25"},
                                  "eval": {"data": [str(small_beir)], "k": 10}}))
    assert main(["run", str(recipe)]) == 0
    out = capsys.readouterr().out
    saved = json.loads(next((tmp_path / "bm25-run" / "eval").rglob("*.json")).read_text())
    assert saved["k"] == 10 and saved["settings"]["k"] == 10 and saved["settings_key"]
    assert {"ndcg@10", "recall@10", "mrr@10", "map@10"} <= set(saved)
    assert not [key for key in saved if key.endswith("@100")]
    assert "Recall@10 |" in out and "Recall@100" not in out
    assert saved["document_text"] == "title+text" and saved["corpus_fingerprint"] and saved["model_name"] == "bm25"


@pytest.mark.slow  # trains the tiny model twice
def test_run_output_is_quiet_and_a_trained_model_is_never_replaced_silently(tmp_path, tiny_modernbert, train_jsonl,
                                                                           small_beir, capsys):
    from embedkit.cli import main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({
        "output_dir": str(tmp_path / "model"),
        "model": {"name": str(tiny_modernbert), "max_seq_length": 64},
        "data": {"train": str(train_jsonl)},
        "training": {"learning_rate": 2e-3, "batch_size": 16, "max_steps": 2, "warmup_ratio": 0.0,
                     "logging_steps": 1, "packed": "off"},
        "index": {"corpus": str(small_beir), "batch_size": 32, "packed": "off"},
        "eval": {"data": [str(small_beir)], "batch_size": 32, "packed": "off"}}))
    assert main(["run", str(recipe)]) == 0
    out, err = capsys.readouterr()
    assert "loss" not in out and "{" not in out  # the trainer's log dicts stay off stdout
    assert all(line.startswith(("|", "run folder:")) or not line.strip() for line in out.splitlines()), out
    stage_lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in stage_lines] == ["[1/4] train", "[2/4] index", "[3/4] eval", "[4/4] report"]
    assert "Computing widget examples" not in err and "DEBUG" not in err and "{'loss'" not in err
    for stage, artefact in (("train", "model"), ("index", "model-run/index"), ("eval", "model-run/eval"),
                            ("report", "model-run/report/report.md")):
        assert f"| {stage} | ran |" in out and str(tmp_path / artefact) in out

    manifest = (tmp_path / "model" / "embedkit.json").read_bytes()
    assert main(["run", str(recipe), "--set", "training.learning_rate=1e-3"]) == 2
    err = capsys.readouterr().err
    assert "trained with other settings (training.learning_rate: 0.002 -> 0.001)" in err and "--overwrite" in err
    assert (tmp_path / "model" / "embedkit.json").read_bytes() == manifest
    assert main(["run", str(recipe), "--set", "eval.k=20"]) == 0  # not a training key: no retraining
    assert "| train | skipped (done) |" in capsys.readouterr().out
    assert main(["train", str(recipe)]) == 0  # train and run agree: the same model is kept
    assert capsys.readouterr().out.strip() == str(tmp_path / "model")
    assert main(["train", str(recipe), "--set", "training.learning_rate=1e-3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["run", str(recipe), "--set", "training.learning_rate=1e-3", "--stages", "train", "--overwrite"]) == 0
    assert (tmp_path / "model" / "embedkit.json").read_bytes() != manifest


@pytest.mark.slow
def test_baselines_are_scored_at_the_length_the_recipe_model_was(tmp_path, tiny_modernbert, small_beir):
    """Results record the length the encoder read (the model's own when the recipe leaves it null), and a
    recipe's baselines are scored at its model's length, so that the report compares like with like."""
    import shutil
    from pathlib import Path

    from embedkit.pipeline import run_pipeline

    short = tmp_path / "short-model"  # the same weights, a tokenizer that stops at 32 tokens
    shutil.copytree(tiny_modernbert, short)
    config = json.loads((short / "tokenizer_config.json").read_text())
    (short / "tokenizer_config.json").write_text(json.dumps(config | {"model_max_length": 32}))
    recipe = load_recipe({
        "output_dir": str(tmp_path / "own"), "model": {"name": str(short)},
        "eval": {"data": [str(small_beir)], "k": 10, "packed": "off"},
        "report": {"baselines": [str(tiny_modernbert), "bm25"]}})
    results = {Path(r["model"]).name: r for r in run_pipeline(recipe).results}
    own, base, bm25 = results["short-model"], results[Path(tiny_modernbert).name], results["bm25"]
    assert own["max_length"] == 32 and own["settings"]["max_length"] is None  # effective; the recipe asked none
    assert base["max_length"] == 32 and base["settings"]["max_length"] == 32  # scored beside it at its length
    assert bm25["max_length"] is None  # whole documents
    report = (tmp_path / "own-run" / "report" / "report.md").read_text()
    assert "The models read documents up to 32 tokens." in report
