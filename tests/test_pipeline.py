"""`embedkit run`: four stages from one recipe, skipped when done, resumed after a kill in any stage."""

from __future__ import annotations

import json

import pytest

from embedkit.config import recipe_from_dict
from embedkit.pipeline import parse_stages, run_pipeline


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
def small_beir(tmp_path, make_beir, code_pairs):
    pairs = code_pairs[:100]
    return make_beir(tmp_path / "beir", [(p.id, p.code) for p in pairs], [(f"q{i}", p.query) for i, p in
                     enumerate(pairs[:30])], [(f"q{i}", p.id, 1) for i, p in enumerate(pairs[:30])])


def make_recipe(tmp_path, model, train, beir, *overrides):
    return recipe_from_dict({
        "output_dir": str(tmp_path / "model"),
        "model": {"name": str(model), "max_seq_length": 64, "unpadded": "off"},
        "data": {"train": str(train)},
        "training": {"learning_rate": 2e-3, "batch_size": 16, "max_steps": 3, "warmup_ratio": 0.0,
                     "logging_steps": 1},
        "index": {"corpus": str(beir), "output_dir": str(tmp_path / "index"), "shard_size": 25,
                  "batch_size": 32},
        "eval": {"data": [str(beir)], "output_dir": str(tmp_path / "eval"), "batch_size": 32},
        "report": {"output_dir": str(tmp_path / "report"), "baselines": ["bm25"]},
    }, list(overrides))


@pytest.mark.slow  # trains the tiny model twice (a killed run and its resume) and encodes 100 documents
def test_run_resumes_after_a_kill_in_each_stage_then_skips(tmp_path, tiny_modernbert, train_jsonl, small_beir,
                                                           monkeypatch):
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    recipe = make_recipe(tmp_path, tiny_modernbert, train_jsonl, small_beir)

    # train: killed while publishing the model
    kill_on_call(monkeypatch, "embedkit.train.run.write_json")
    with pytest.raises(Killed):
        run_pipeline(recipe)
    assert (tmp_path / "model.partial").is_dir() and not (tmp_path / "model").exists()
    monkeypatch.undo()
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))

    # index: killed after the first of four shards; the rerun encodes only the other three
    in_stage = lambda shard, *a: shard.folder.parent.name == "index.partial"  # noqa: E731 (not eval's indexes)
    shards = kill_on_call(monkeypatch, "embedkit.index.encode._write_shard", call=2, when=in_stage)
    with pytest.raises(Killed):
        run_pipeline(recipe)
    assert (tmp_path / "model" / "embedkit.json").is_file() and (tmp_path / "index.partial").is_dir()
    monkeypatch.undo()
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
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
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))

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


def test_recipe_without_training_data_scores_the_model_as_is(tmp_path, small_beir, monkeypatch, capsys):
    """A recipe with only index/eval sections (here BM25: no model) runs through the CLI."""
    from embedkit.cli import main

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "bm25.yaml"
    path.write_text(json.dumps({
        "model": {"name": "bm25"},
        "index": {"corpus": str(small_beir), "backend": "bm25", "output_dir": str(tmp_path / "index")},
        "eval": {"data": [str(small_beir)], "output_dir": str(tmp_path / "eval")},
        "report": {"output_dir": str(tmp_path / "report")}}))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| train | off |" in out and "| index | ran |" in out and "| bm25 |" in out
    assert (tmp_path / "report" / "report.md").is_file()
    assert main(["run", str(path), "--stages", "eval"]) == 0
    assert "| eval | skipped (done) |" in capsys.readouterr().out
