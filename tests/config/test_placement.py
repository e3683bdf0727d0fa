"""Where a run's stages write: the run folder beside the model folder."""

from pathlib import Path

from embedkit.train.recipes import load_recipe


def test_relative_outputs_go_in_the_run_folder_and_absolute_ones_stay():
    from embedkit.config import run_folder, with_run_paths

    recipe = load_recipe({"output_dir": "runs/m", "index": {"output_dir": "/abs/index"},
                          "report": {"output_dir": "figures"}})
    placed = with_run_paths(recipe)
    assert run_folder(recipe) == Path("runs/m-run")
    assert (placed.index.output_dir, placed.eval.output_dir, placed.report.output_dir) == (
        "/abs/index", str(Path("runs/m-run/eval")), str(Path("runs/m-run/figures")))
