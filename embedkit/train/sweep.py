"""Hyper-parameter sweeps: one recipe × a grid of ``--set`` values → trained variants, a table, a winner.

The paper picked each model's learning rate from {1e-5, 2e-5, 3e-5, 5e-5, 8e-5, 1e-4} by mean
nDCG@10 on NFCorpus, SciFact, TREC-COVID and FiQA; :data:`PAPER_SELECTION` is that set, used when
the recipe's ``eval.data`` is empty.

Variants run one after another on one device. Each finished variant leaves
``<sweep_dir>/runs/<i>.json``; a variant whose result is already there is skipped, so an
interrupted sweep resumes and several devices can share a sweep::

    # one process per GPU, each taking some variants (same recipe, same grid)
    CUDA_VISIBLE_DEVICES=0 embedkit sweep r.yaml --set-grid training.learning_rate=1e-5,2e-5,3e-5 --only-index 0 &
    CUDA_VISIBLE_DEVICES=1 embedkit sweep r.yaml --set-grid training.learning_rate=1e-5,2e-5,3e-5 --only-index 1,2 &
    wait
    embedkit sweep r.yaml --set-grid training.learning_rate=1e-5,2e-5,3e-5   # all done: writes the table

A partial run (``--only-index``) never deletes models; the run that sees every variant finished
writes ``sweep.md`` / ``sweep.json`` and, with ``keep="best"``, deletes the losers' model folders.
"""

from __future__ import annotations

import itertools
import logging
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from embedkit.artifacts import read_json, versions, write_json
from embedkit.config import Recipe
from embedkit.distributed import world_size
from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe

logger = logging.getLogger(__name__)

PAPER_SELECTION = ("beir/nfcorpus", "beir/scifact", "beir/trec-covid", "beir/fiqa")
METRIC = "ndcg@10"


@dataclass
class Variant:
    index: int
    assignments: list[str]          # the grid's key=value for this variant
    output_dir: str
    recipe: Recipe = field(repr=False)

    @property
    def label(self) -> str:
        return ", ".join(self.assignments)


@dataclass
class RunResult:
    index: int
    assignments: list[str]
    output_dir: str
    scores: dict[str, float]        # selection set name -> nDCG@10
    mean: float
    train_seconds: float
    kept: bool = True


def parse_grid(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``["training.learning_rate=1e-5,2e-5"]`` → ``[("training.learning_rate", ["1e-5", "2e-5"])]``."""
    grid = []
    for spec in specs:
        if "=" not in spec:
            raise EmbedkitError(f"--set-grid expects key=v1,v2,..., got {spec!r}")
        key, values = spec.split("=", 1)
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not key.strip() or not items:
            raise EmbedkitError(f"--set-grid {spec!r}: need a key and at least one value")
        if key.strip() in [k for k, _ in grid]:
            raise EmbedkitError(f"--set-grid: {key.strip()} given twice")
        grid.append((key.strip(), items))
    if not grid:
        raise EmbedkitError("a sweep needs at least one --set-grid key=v1,v2,...")
    return grid


def _slug(assignments: list[str]) -> str:
    parts = [f"{a.split('=', 1)[0].split('.')[-1]}-{a.split('=', 1)[1]}" for a in assignments]
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", "_".join(parts))


def plan(recipe_path: str | Path, overrides: list[str], grid: list[tuple[str, list[str]]]) -> list[Variant]:
    """Every combination of the grid, each a validated recipe with its own ``output_dir``."""
    base = load_recipe(recipe_path, overrides)
    variants = []
    for i, values in enumerate(itertools.product(*(v for _, v in grid))):
        assignments = [f"{k}={v}" for (k, _), v in zip(grid, values)]
        output_dir = f"{base.output_dir.rstrip('/')}-{i}-{_slug(assignments)}"
        recipe = load_recipe(recipe_path, [*overrides, *assignments, f"output_dir={output_dir}"])
        variants.append(Variant(i, assignments, output_dir, recipe))
    return variants


def sweep_dir_for(recipe: Recipe) -> Path:
    return Path(f"{recipe.output_dir.rstrip('/')}-sweep")


def resolve_selection(names: list[str]) -> list[tuple[str, Path]]:
    """(display name, BEIR folder) for each selection entry: a local folder, or a benchmark name
    materialised through :mod:`embedkit.data.benchmarks` (fails before any training when offline)."""
    resolved = []
    for name in names:
        path = Path(name).expanduser()
        if path.is_dir():
            resolved.append((path.name, path))
            continue
        from embedkit.data.benchmark_sources import materialize
        from embedkit.data.benchmarks import get_benchmark

        entry = get_benchmark(name)
        resolved.append((entry.name, materialize(entry)))
    names_seen = [n for n, _ in resolved]
    if len(set(names_seen)) != len(names_seen):  # two folders with the same basename: use full paths
        resolved = [(str(p), p) for _, p in resolved]
    return resolved


def _score(metrics: dict[str, dict], selection: list[tuple[str, Path]]) -> dict[str, float]:
    scores = {}
    for name, folder in selection:
        found = metrics.get(str(folder))
        if found is None:
            raise EmbedkitError(f"metrics.json has no scores for {folder}")
        scores[name] = float(found[METRIC])
    return scores


def run_variant(variant: Variant, selection: list[tuple[str, Path]], sweep_dir: Path,
                overwrite: bool = False) -> RunResult:
    from embedkit.train.run import train

    scored = [str(folder) for _, folder in selection]
    recipe = replace(variant.recipe, eval=replace(variant.recipe.eval, data=scored))
    start = time.time()
    folder = train(recipe, overwrite=overwrite)
    metrics = read_json(folder / "metrics.json")
    scores = _score(metrics, selection)
    result = RunResult(variant.index, variant.assignments, variant.output_dir, scores,
                       sum(scores.values()) / len(scores), round(time.time() - start, 1))
    (sweep_dir / "runs").mkdir(parents=True, exist_ok=True)
    write_json(sweep_dir / "runs" / f"{variant.index}.json", asdict(result))
    logger.info("variant %d (%s): mean nDCG@10 %.4f", variant.index, variant.label, result.mean)
    return result


def render_table(results: list[RunResult], selection_names: list[str], winner: int | None) -> str:
    head = ["#", "settings", f"mean {METRIC}", *selection_names, "train+eval s", "model"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(results, key=lambda r: r.index):
        mark = " **(winner)**" if r.index == winner else ""
        model = r.output_dir if r.kept else f"{r.output_dir} (deleted)"
        cells = [str(r.index), ", ".join(r.assignments) + mark,
                 f"{r.mean:.4f}", *(f"{r.scores.get(n, float('nan')):.4f}" for n in selection_names),
                 f"{r.train_seconds:.0f}", model]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class SweepResult:
    sweep_dir: Path
    results: list[RunResult]
    winner: RunResult | None
    complete: bool
    table: str


def run_sweep(recipe_path: str | Path, grid_specs: list[str], overrides: list[str] | None = None,
              only: list[int] | None = None, keep: Literal["best", "all"] = "best",
              overwrite: bool = False, sweep_dir: str | Path | None = None) -> SweepResult:
    """Train every grid variant not yet finished (or only those in ``only``), then, once all are
    finished, pick the best mean nDCG@10 on the selection sets and write the table."""
    if world_size() > 1:
        raise EmbedkitError("embedkit sweep under torchrun is not supported: run one sweep process per GPU "
                            "(CUDA_VISIBLE_DEVICES=i) with --only-index, then once more to write the table")
    overrides = list(overrides or [])
    grid = parse_grid(grid_specs)
    variants = plan(recipe_path, overrides, grid)
    if only is not None:
        bad = [i for i in only if not 0 <= i < len(variants)]
        if bad:
            raise EmbedkitError(f"--only-index {bad[0]}: the grid has {len(variants)} variants "
                                f"(0..{len(variants) - 1})")
    base = load_recipe(recipe_path, overrides)
    sweep_dir = Path(sweep_dir) if sweep_dir else sweep_dir_for(base)
    if not base.eval.data:
        logger.info("the recipe's eval.data is empty: variants are selected on the paper's selection set, %s (to "
                    "select on your own data: --set 'eval.data=[path/to/beir-folder]')", ", ".join(PAPER_SELECTION))
    selection = resolve_selection(list(base.eval.data) or list(PAPER_SELECTION))
    names = [n for n, _ in selection]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_json(sweep_dir / "plan.json", {"recipe": str(recipe_path), "overrides": overrides, "grid": grid_specs,
                                         "selection": [[n, str(p)] for n, p in selection],
                                         "variants": [{"index": v.index, "assignments": v.assignments,
                                                       "output_dir": v.output_dir} for v in variants]})
    for variant in variants:
        if only is not None and variant.index not in only:
            continue
        done = sweep_dir / "runs" / f"{variant.index}.json"
        if done.is_file() and not overwrite:
            previous = RunResult(**read_json(done))
            if not previous.kept or Path(variant.output_dir).exists():  # a deleted loser stays finished
                logger.info("variant %d (%s) already finished; skipping", variant.index, variant.label)
                continue
        logger.info("training variant %d/%d: %s", variant.index + 1, len(variants), variant.label)
        run_variant(variant, selection, sweep_dir, overwrite=True)
    results = []
    for variant in variants:
        path = sweep_dir / "runs" / f"{variant.index}.json"
        if path.is_file():
            results.append(RunResult(**read_json(path)))
    complete = len(results) == len(variants)
    winner = max(results, key=lambda r: (r.mean, -r.index)) if results else None
    if complete and keep == "best" and winner is not None:
        for r in results:
            if r.index != winner.index and r.kept:
                shutil.rmtree(r.output_dir, ignore_errors=True)
                r.kept = False
                write_json(sweep_dir / "runs" / f"{r.index}.json", asdict(r))
    table = render_table(results, names, winner.index if winner else None)
    if complete:
        summary = (f"Winner: variant {winner.index} ({', '.join(winner.assignments)}), mean {METRIC} "
                   f"{winner.mean:.4f} over {', '.join(names)}; model at {winner.output_dir}.")
        (sweep_dir / "sweep.md").write_text(f"# Sweep of {recipe_path}\n\n{table}\n\n{summary}\n", encoding="utf-8")
        write_json(sweep_dir / "sweep.json", {"recipe": str(recipe_path), "overrides": overrides, "grid": grid_specs,
                                              "metric": METRIC, "selection": names,
                                              "winner": asdict(winner), "runs": [asdict(r) for r in results],
                                              "versions": versions()})
    return SweepResult(sweep_dir, results, winner if complete else None, complete, table)
