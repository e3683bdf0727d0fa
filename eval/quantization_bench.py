"""Quantized dense indexes (index.quantization none / int8 / binary, with and without rescoring) against exact flat
search, beside sentence-transformers' ``semantic_search_faiss`` with the same settings.

Two parts, each writing one JSON under eval/results/:

- ``real``: the packaged all-MiniLM-L6-v2 (never trained on these sets: held-out data) on the quickstart's code set
  (2,000 stdlib functions, 500 docstring-summary queries) and a text set (stdlib docstring summaries against the
  rest of their docstrings). The corpus is encoded once (the flat index); every other index is rebuilt from its kept
  shards. Per setting: bytes on disk (first pass, rescoring vectors), resident bytes of the first pass, build time,
  p50/p99 latency of one query vector (the model's query encoding excluded, identical for all), nDCG@10 and
  recall@10 against exact flat.
- ``synthetic``: N x 384 clustered unit vectors streamed in chunks (never all in memory) into a binary flat index
  and the rescoring vectors file, searched through embedkit's QuantizedIndex; recall@10 against a streamed exact
  search; peak RSS of the process.

    nice python eval/quantization_bench.py real
    nice python eval/quantization_bench.py synthetic --size 10000000
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchkit.data import code_folder, text_folder
from benchkit.machine import describe as machine
from benchkit.machine import load_note
from benchkit.memory import peak_rss_mb, rss_mb
from benchkit.results import RESULTS, save


def recall_at_10(positions: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(p[:10]) & set(e[:10])) / 10 for p, e in zip(positions, exact)]))


def latencies(search, queries: np.ndarray, k: int) -> tuple[np.ndarray, dict]:
    """Each query searched alone; (positions (num_queries, k), p50/p99 in ms)."""
    search(queries[:1], k)  # warm-up
    times, rows = [], []
    for i in range(len(queries)):
        t0 = time.perf_counter()
        _, positions = search(queries[i:i + 1], k)
        times.append((time.perf_counter() - t0) * 1000)
        rows.append(positions[0])
    return np.array(rows), {"p50_ms": round(float(np.percentile(times, 50)), 3),
                            "p99_ms": round(float(np.percentile(times, 99)), 3)}


# ----------------------------------------------------------------------------------------------- real data

def real_sets(root: Path, docs: int, queries: int) -> dict[str, Path]:
    """The quickstart's code set and the stdlib docstring text set, as eval/latency.py measures them."""
    return {"stdlib-code": code_folder(root / "code", docs, queries),
            "stdlib-docstrings": text_folder(root / "text", docs, queries)}


def folder_bytes(folder: Path, names: tuple[str, ...]) -> int:
    return sum((folder / n).stat().st_size for n in names if (folder / n).exists())


def st_search(flat_vectors: np.ndarray, queries: np.ndarray, precision: str, rescore: bool, multiplier: int,
              calibration: np.ndarray) -> tuple[np.ndarray, dict, float]:
    """sentence-transformers' quantize_embeddings + semantic_search_faiss, one query at a time."""
    from sentence_transformers.util.quantization import quantize_embeddings, semantic_search_faiss

    st_precision = {"none": "float32", "int8": "uint8", "binary": "ubinary"}[precision]
    t0 = time.perf_counter()
    corpus = flat_vectors if precision == "none" else quantize_embeddings(
        flat_vectors, st_precision, calibration_embeddings=calibration)
    _, _, index = semantic_search_faiss(queries[:1], corpus_embeddings=corpus, corpus_precision=st_precision,
                                        top_k=10, rescore=rescore, rescore_multiplier=multiplier, output_index=True,
                                        calibration_embeddings=calibration)
    build = time.perf_counter() - t0

    def search(q: np.ndarray, k: int):
        hits, _ = semantic_search_faiss(q, corpus_index=index, corpus_precision=st_precision, top_k=k,
                                        rescore=rescore and precision != "none", rescore_multiplier=multiplier,
                                        calibration_embeddings=calibration)
        return None, np.array([[h["corpus_id"] for h in row] + [-1] * (k - len(row)) for row in hits])

    positions, lat = latencies(search, queries, 10)
    return positions, lat, build


def ndcg(positions: np.ndarray, ids, data, qids: list[str]) -> float:
    from embedkit.evaluate.metrics import evaluate_run

    run = {qid: {ids[int(p)]: float(10 - r) for r, p in enumerate(row[:10]) if p >= 0}
           for qid, row in zip(qids, positions)}
    return round(evaluate_run(data.qrels, run, k=10)["ndcg@10"], 5)


def run_real(args: argparse.Namespace) -> dict:
    from embedkit.config import IndexSettings
    from embedkit.data.beir import load_beir
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index, open_index
    from embedkit.quickstart import packaged_minilm

    model = packaged_minilm()
    root = Path(tempfile.mkdtemp(prefix="quant-bench-"))
    out: dict = {"machine": machine(), "load": load_note("at the start", verdict=True),
                 "model": "all-MiniLM-L6-v2 (packaged)", "python": platform.python_version(), "datasets": {}}
    try:
        for name, folder in real_sets(root, args.docs, args.queries).items():
            data = load_beir(folder)
            qids = list(data.queries)
            flat_dir = root / f"{name}-flat"
            t0 = time.perf_counter()
            build_index(model, Corpus(str(folder)), flat_dir, IndexSettings(backend="flat"), progress=False)
            encode_and_build = time.perf_counter() - t0
            flat = open_index(flat_dir)
            queries = np.asarray(flat.encoder.encode_queries([data.queries[q] for q in qids]), dtype=np.float32)
            vectors = np.load(flat_dir / "vectors.npy") if (flat_dir / "vectors.npy").exists() else \
                flat.faiss.reconstruct_n(0, flat.faiss.ntotal)  # (n, 384)
            exact, flat_lat = latencies(flat.search_encoded, queries, 10)
            ids = flat.store.ids
            reference = ndcg(exact, ids, data, qids)
            rows = [{"engine": "embedkit", "quantization": "none (flat)", "rescore_multiplier": None,
                     "ndcg@10": reference, "recall@10_vs_flat": 1.0, **flat_lat,
                     "disk_bytes_first_pass": folder_bytes(flat_dir, ("index.faiss",)), "disk_bytes_rescore": 0,
                     "resident_bytes_first_pass": int(flat.faiss.ntotal * flat.faiss.d * 4),
                     "build_s": None, "encode_and_build_s": round(encode_and_build, 2)}]
            calibration = vectors[np.random.default_rng(0).choice(len(vectors), min(len(vectors), 200_000),
                                                                  replace=False)]
            for quantization in ("int8", "binary"):
                for multiplier in args.multipliers:
                    target = root / f"{name}-{quantization}-{multiplier}"
                    shutil.copytree(flat_dir, target)
                    t0 = time.perf_counter()
                    build_index(model, Corpus(str(folder)), target, IndexSettings(
                        quantization=quantization, rescore_multiplier=multiplier), overwrite=True, progress=False,
                        encoder=flat.encoder)
                    build = time.perf_counter() - t0
                    index = open_index(target, encoder=flat.encoder)
                    first_pass = index.first_pass
                    resident = int(first_pass.ntotal * first_pass.code_size)
                    for rescore in (True, False):
                        if not rescore and multiplier != args.multipliers[0]:
                            continue
                        index.rescore = rescore
                        positions, lat = latencies(index.search_encoded, queries, 10)
                        rows.append({"engine": "embedkit", "quantization": quantization,
                                     "rescore_multiplier": multiplier if rescore else None,
                                     "ndcg@10": ndcg(positions, ids, data, qids),
                                     "recall@10_vs_flat": round(recall_at_10(positions, exact), 4), **lat,
                                     "disk_bytes_first_pass": folder_bytes(target, ("index.faiss",)),
                                     "disk_bytes_rescore": folder_bytes(target, ("vectors.npy",)),
                                     "resident_bytes_first_pass": resident, "build_s": round(build, 2)})
                    for rescore in (True, False):
                        if not rescore and multiplier != args.multipliers[0]:
                            continue
                        positions, lat, st_build = st_search(vectors, queries, quantization, rescore, multiplier,
                                                             calibration)
                        rows.append({"engine": "sentence-transformers semantic_search_faiss",
                                     "quantization": quantization,
                                     "rescore_multiplier": multiplier if rescore else None,
                                     "ndcg@10": ndcg(positions, ids, data, qids),
                                     "recall@10_vs_flat": round(recall_at_10(positions, exact), 4), **lat,
                                     "build_s": round(st_build, 2)})
                    shutil.rmtree(target)
            out["datasets"][name] = {"documents": len(ids), "queries": len(qids), "rows": rows}
            print(json.dumps({name: rows}, indent=1), file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


# ----------------------------------------------------------------------------------------------- synthetic

def _write_npy_header(f, shape: tuple[int, int]) -> None:
    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})


def run_synthetic(args: argparse.Namespace) -> dict:
    """Stream N x dim vectors into a binary first pass and vectors.npy (plain writes, not a memory map, so
    written pages are not counted as resident), then search through QuantizedIndex."""
    import faiss
    from sentence_transformers.util.quantization import semantic_search_faiss

    from embedkit.index.base import IndexManifest
    from embedkit.index.quantized import BINARY, VECTORS, QuantizedIndex

    n, dim, chunk = args.size, args.dim, args.chunk
    start_rss = rss_mb()  # python, numpy, faiss, torch and sentence-transformers imported
    load = load_note("at the start", verdict=True)  # before this run's own load is in it
    folder = Path(args.workdir) / f"synthetic-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((1000, dim), dtype=np.float32)
    picked = np.sort(rng.choice(n, args.queries, replace=False))
    queries = np.zeros((args.queries, dim), np.float32)
    t0 = time.perf_counter()
    index, recorded = BINARY.new_index(dim, None, lambda: None)
    with open(folder / VECTORS, "wb") as f:
        _write_npy_header(f, (n, dim))
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            x = centers[rng.integers(0, len(centers), size)]
            x += 0.8 * rng.standard_normal((size, dim), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)  # (size, dim), unit length
            BINARY.add(index, x)
            f.write(x.tobytes())
            inside = picked[(picked >= start) & (picked < start + size)]
            for i in inside:  # queries: documents moved a little, so each has near neighbours
                q = x[i - start] + 0.5 * rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim)
                queries[np.searchsorted(picked, i)] = q / np.linalg.norm(q)
            del x
    BINARY.write(index, folder / "index.faiss")
    build = time.perf_counter() - t0
    del index
    IndexManifest(kind="dense", backend="flat", model="synthetic", model_fingerprint="-", embedding_dim=dim,
                  normalized=True, num_documents=n, corpus="synthetic",
                  settings={**recorded, "quantization": "binary", "rescore_multiplier": args.multipliers[0],
                            "shortlist_dim": None, "rescore_vectors": VECTORS}).save(folder)
    # exact top-10 by a streamed brute force (file reads, not a memory map)
    t0 = time.perf_counter()
    best_s = np.full((args.queries, 10), -np.inf, np.float32)
    best_p = np.zeros((args.queries, 10), np.int64)
    with open(folder / VECTORS, "rb") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            block = np.fromfile(f, dtype=np.float32, count=size * dim).reshape(size, dim)
            scores = queries @ block.T  # (queries, size)
            top = np.argpartition(-scores, 10, axis=1)[:, :10]
            s = np.concatenate([best_s, np.take_along_axis(scores, top, 1)], axis=1)
            p = np.concatenate([best_p, top + start], axis=1)
            order = np.argsort(-s, axis=1)[:, :10]
            best_s, best_p = np.take_along_axis(s, order, 1), np.take_along_axis(p, order, 1)
            del block, scores
    exact_s = time.perf_counter() - t0
    before = rss_mb()
    opened = QuantizedIndex(folder)
    resident = rss_mb() - before
    rows = []
    for multiplier in [None, *args.multipliers]:
        opened.rescore, opened.rescore_multiplier = multiplier is not None, multiplier or 1
        positions, lat = latencies(opened.search_encoded, queries, 10)
        rows.append({"engine": "embedkit", "quantization": "binary", "rescore_multiplier": multiplier,
                     "recall@10_vs_exact": round(recall_at_10(positions, best_p), 4), **lat})

        def search(q, k, multiplier=multiplier):
            hits, _ = semantic_search_faiss(q, corpus_index=opened.first_pass, corpus_precision="ubinary", top_k=k,
                                            rescore=multiplier is not None, rescore_multiplier=multiplier or 1)
            return None, np.array([[h["corpus_id"] for h in row] for row in hits])

        positions, lat = latencies(search, queries, 10)
        rows.append({"engine": "sentence-transformers semantic_search_faiss (same binary index)",
                     "quantization": "binary", "rescore_multiplier": multiplier,
                     "recall@10_vs_exact": round(recall_at_10(positions, best_p), 4), **lat})
    out = {"machine": machine(), "load": load, "documents": n, "dim": dim, "queries": args.queries,
           "faiss_threads": faiss.omp_get_max_threads(), "build_s": round(build, 1),
           "exact_search_s": round(exact_s, 1),
           "disk_bytes_first_pass": (folder / "index.faiss").stat().st_size,
           "disk_bytes_rescore": (folder / VECTORS).stat().st_size,
           "resident_mb_first_pass_loaded": round(resident, 1), "rss_mb_after_imports": round(start_rss, 1),
           "peak_rss_mb": round(peak_rss_mb(), 1),
           "rows": rows}
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _mb(value: int | None) -> str:
    return "" if value is None else f"{value / 2**20:.2f}"


def markdown() -> str:
    """The tables of docs/measurements/quantization.md, from the JSON files of the last runs."""
    lines = []
    real = RESULTS / "quantization_real.json"
    if real.exists():
        data = json.loads(real.read_text())
        lines += [f"Machine: {data['machine']}; {data['load']}.", ""]
        for name, block in data["datasets"].items():
            lines += [f"**{name}** ({block['documents']} documents, {block['queries']} queries, MiniLM-L6-v2)", "",
                      "| engine | quantization | rescore x | nDCG@10 | / flat | recall@10 vs flat | p50 ms | p99 ms "
                      "| first pass MiB (disk = resident) | rescore vectors MiB (disk, mmap) | build s |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
            flat = block["rows"][0]["ndcg@10"]
            for r in block["rows"]:
                lines.append(f"| {r['engine'].split(' ')[0]} | {r['quantization']} | {r['rescore_multiplier'] or '-'} "
                             f"| {r['ndcg@10']:.4f} | {r['ndcg@10'] / flat:.4f} | {r['recall@10_vs_flat']:.3f} "
                             f"| {r['p50_ms']} | {r['p99_ms']} | {_mb(r.get('resident_bytes_first_pass'))} "
                             f"| {_mb(r.get('disk_bytes_rescore'))} | {r.get('build_s') or ''} |")
            lines.append("")
    for path in sorted(RESULTS.glob("quantization_synthetic_*.json")):
        data = json.loads(path.read_text())
        lines += [f"**synthetic {data['documents']:,} x {data['dim']}** binary flat first pass; {data['machine']}; "
                  f"{data['load']}. Build {data['build_s']} s; first pass {_mb(data['disk_bytes_first_pass'])} MiB, "
                  f"rescore vectors {_mb(data['disk_bytes_rescore'])} MiB on disk; resident after opening "
                  f"{data['resident_mb_first_pass_loaded']} MiB; peak RSS {data['peak_rss_mb']} MiB "
                  f"({data['rss_mb_after_imports']} MiB of it Python, NumPy, FAISS, torch and sentence-transformers "
                  f"before any vector); {data['queries']} queries.", "",
                  "| engine | rescore x | recall@10 vs exact | p50 ms | p99 ms |", "|---|---|---|---|---|"]
        for r in data["rows"]:
            lines.append(f"| {r['engine']} | {r['rescore_multiplier'] or '-'} | {r['recall@10_vs_exact']:.3f} "
                         f"| {r['p50_ms']} | {r['p99_ms']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    real = sub.add_parser("real")
    real.add_argument("--multipliers", type=int, nargs="+", default=[1, 2, 4, 8])
    real.add_argument("--docs", type=int, default=2000)
    real.add_argument("--queries", type=int, default=500)
    syn = sub.add_parser("synthetic")
    syn.add_argument("--size", type=int, default=1_000_000)
    syn.add_argument("--dim", type=int, default=384)
    syn.add_argument("--chunk", type=int, default=200_000)
    syn.add_argument("--queries", type=int, default=100)
    syn.add_argument("--multipliers", type=int, nargs="+", default=[1, 4, 10])
    syn.add_argument("--workdir", default=tempfile.gettempdir())
    syn.add_argument("--keep", action="store_true")
    sub.add_parser("table", help="print the docs' tables from the results JSON")
    args = parser.parse_args()
    if args.part == "table":
        print(markdown())
        return
    if args.part == "real":
        out, path = run_real(args), RESULTS / "quantization_real.json"
    else:
        out, path = run_synthetic(args), RESULTS / f"quantization_synthetic_{args.size}.json"
    save(out, path)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
