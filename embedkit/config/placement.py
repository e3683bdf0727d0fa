"""Where a recipe's stages write: the model in ``output_dir``; the index, results and report in relative
``index.output_dir``, ``eval.output_dir`` and ``report.output_dir`` under one run folder beside it, so that two
recipes never share, or overwrite, each other's outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from embedkit.config.schema import Recipe


def run_folder(recipe: Recipe) -> Path:
    """The folder beside the model folder that holds a run's relative outputs: ``runs/minilm`` (the model) and
    ``runs/minilm-run/{index,eval,report}``.

    >>> run_folder(Recipe(output_dir="runs/minilm")).as_posix()
    'runs/minilm-run'
    """
    model = Path(recipe.output_dir)
    return model.with_name(model.name + "-run")


def with_run_paths(recipe: Recipe) -> Recipe:
    """The recipe with relative ``index.output_dir``, ``eval.output_dir`` and ``report.output_dir`` placed in
    the run folder; absolute ones are kept as they are.

    >>> r = with_run_paths(Recipe(output_dir="runs/m"))
    >>> [Path(p).as_posix() for p in (r.index.output_dir, r.eval.output_dir, r.report.output_dir)]
    ['runs/m-run/index', 'runs/m-run/eval', 'runs/m-run/report']
    """
    folder = run_folder(recipe)

    def place(path: str) -> str:
        return path if Path(path).expanduser().is_absolute() else str(folder / path)

    return dataclasses.replace(
        recipe, index=dataclasses.replace(recipe.index, output_dir=place(recipe.index.output_dir)),
        eval=dataclasses.replace(recipe.eval, output_dir=place(recipe.eval.output_dir)),
        report=dataclasses.replace(recipe.report, output_dir=place(recipe.report.output_dir)))
