"""Learning-rate sweeps: every variant trained and scored, a table naming the winner, losers deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from embedkit.errors import EmbedkitError
from embedkit.train.sweep import parse_grid, plan, run_sweep
from tests.helpers import write_code_beir

GRID = ["training.learning_rate=1e-5,2e-5,3e-5"]


@pytest.fixture()
def small_beir(tmp_path, code_pairs) -> Path:
    return write_code_beir(tmp_path / "select", code_pairs[:60], 20)


@pytest.fixture()
def mined_jsonl(tmp_path, code_pairs) -> Path:
    """The "done when" chain starts here: (query, positive) pairs -> BM25-mined hard negatives."""
    from embedkit.train.mining import MiningOptions, mine

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": p.query, "positive": p.code}) + "\n" for p in code_pairs[200:300]),
                     encoding="utf-8")
    return mine(pairs, tmp_path / "mined.jsonl", "bm25",
                MiningOptions(num_negatives=2, range_min=1, range_max=30, relative_margin=0.05)).output


@pytest.fixture()
def tiny_recipe(tmp_path, tiny_modernbert, mined_jsonl, small_beir) -> Path:
    recipe = {
        "kind": "dense", "output_dir": str(tmp_path / "runs" / "tiny"),
        "model": {"name": str(tiny_modernbert), "max_seq_length": 64},
        "data": {"train": str(mined_jsonl), "max_samples": 32},
        "training": {"batch_size": 8, "max_steps": 2, "logging_steps": 1, "save_steps": 1000, "warmup_ratio": 0.0,
                     "packed": "off"},
        "eval": {"data": [str(small_beir)], "batch_size": 32, "packed": "off"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_parse_grid_and_plan(tiny_recipe):
    assert parse_grid(["a.b=1,2", "c=x"]) == [("a.b", ["1", "2"]), ("c", ["x"])]
    for bad in (["a.b"], ["a.b="], ["a=1", "a=2"], []):
        with pytest.raises(EmbedkitError):
            parse_grid(bad)
    variants = plan(tiny_recipe, ["training.seed=7"], parse_grid([*GRID, "loss.scale=10,20"]))
    assert len(variants) == 6
    assert [v.recipe.training.learning_rate for v in variants[:2]] == [1e-5, 1e-5]
    assert variants[1].recipe.loss.scale == 20 and variants[5].recipe.training.learning_rate == 3e-5
    assert all(v.recipe.training.seed == 7 for v in variants)
    assert len({v.output_dir for v in variants}) == 6
    assert variants[0].output_dir.endswith("-0-learning_rate-1e-5_scale-10")
    with pytest.raises(EmbedkitError, match="training.learning_rat"):
        plan(tiny_recipe, [], parse_grid(["training.learning_rat=1e-5"]))  # unknown keys fail before training


@pytest.mark.slow
def test_sweep_trains_scores_and_keeps_the_best(tiny_recipe, tmp_path):
    from embedkit.cli import main

    # one variant alone (as one GPU's share would be): no table yet, nothing deleted
    partial = run_sweep(tiny_recipe, GRID, only=[1])
    assert not partial.complete and [r.index for r in partial.results] == [1]
    assert main(["sweep", str(tiny_recipe), "--set-grid", GRID[0]]) == 0  # the rest; variant 1 is skipped
    sweep_dir = tmp_path / "runs" / "tiny-sweep"
    summary = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    runs = summary["runs"]
    assert [r["index"] for r in runs] == [0, 1, 2]
    best = max(runs, key=lambda r: (r["mean"], -r["index"]))
    assert summary["winner"]["index"] == best["index"]
    assert all(0 <= r["mean"] <= 1 and list(r["scores"]) == ["select"] for r in runs)
    for r in runs:  # the winner's model is kept, the others deleted
        assert Path(r["output_dir"]).exists() == (r["index"] == best["index"]) == r["kept"]
    table = (sweep_dir / "sweep.md").read_text(encoding="utf-8")
    assert "**(winner)**" in table and f"Winner: variant {best['index']}" in table
    assert table.count("(deleted)") == 2
    # a finished sweep reruns as a no-op that rewrites the same table
    again = run_sweep(tiny_recipe, GRID)
    assert again.complete and again.winner.index == best["index"]
    assert [r.kept for r in again.results] == [r["kept"] for r in runs]  # nothing retrained


def test_sweep_without_selection_needs_the_paper_sets(tiny_recipe, tmp_path):
    # eval.data empty -> the paper's four BEIR sets, which are not cached offline: fail before training
    with pytest.raises(EmbedkitError):
        run_sweep(tiny_recipe, GRID, overrides=["eval.data=[]"])
    assert not (tmp_path / "runs" / "tiny-0-learning_rate-1e-5").exists()
    assert main_rc(["sweep", str(tiny_recipe), "--set-grid", GRID[0], "--only-index", "5"]) == 2


def main_rc(argv):
    from embedkit.cli import main

    return main(argv)
