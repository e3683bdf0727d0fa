"""Learned sparse (SPLADE) retrieval measured side by side in one run, on this machine.

1. encode: documents/s of embedkit's sparse encoder (chunked vocabulary projection, CSR out) against
   ``SparseEncoder.encode_document`` on the same texts and model (the outputs are checked equal);
2. search: exact sparse scoring (``sparse-exact``) and Seismic (``seismic``, default settings) at growing synthetic
   corpus sizes: build seconds, p50/p95 latency of one query per call, Seismic's recall@10 against exact, and the
   peak resident memory of the process doing each size (each size runs in its own process);
3. quality: nDCG@10 of sparse, dense and their RRF fusion on the quickstart's code-search data (stdlib functions).

The sparse model is the packaged all-MiniLM-L6-v2 made a SPLADE model (its tied word embeddings are the MLM
decoder) with the head transform set to read hidden states against the word embeddings (3 x identity, decoder
bias -4.5): an *untrained* lexical SPLADE, so the quality rows say what the wiring gives, not what a trained
SPLADE reaches. Synthetic vectors: a Zipf-like vocabulary of 30,522 terms, ~120 terms a document and ~30 a query
(SPLADE-like sizes), log-normal weights.

Usage: nice python eval/sparse_bench.py [--sizes 10000 100000 1000000] [--out eval/results/sparse_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from benchkit.children import ChildFailed, run_json_child
from benchkit.machine import facts as machine
from benchkit.memory import peak_rss_mb
from benchkit.results import save as save_json

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
VOCAB, DOC_TERMS, QUERY_TERMS = 30522, 120, 30


def synthetic(n: int, terms: int, seed: int, chunk: int = 50_000):
    """(n, VOCAB) CSR rows of ``terms`` distinct Zipf-distributed term ids (about), log-normal weights; built
    ``chunk`` rows at a time into preallocated arrays, so memory stays near the final matrix's size."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 0.8
    p /= p.sum()
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(n * terms, np.int32)  # an upper bound: duplicates merged per chunk
    values = np.empty(n * terms, np.float32)
    filled = 0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        cols = rng.choice(VOCAB, size=(m, terms), p=p).astype(np.int32)  # (m, terms), duplicates merged below
        vals = rng.lognormal(0.0, 0.6, size=(m, terms)).astype(np.float32)
        block = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, m * terms + 1, terms)), shape=(m, VOCAB))
        block.sum_duplicates()  # sorts each row's terms and adds repeated ones
        indices[filled:filled + block.nnz] = block.indices
        values[filled:filled + block.nnz] = block.data
        indptr[start + 1:start + m + 1] = filled + block.indptr[1:]
        filled += block.nnz
    return sp.csr_matrix((values[:filled].copy(), indices[:filled].copy(), indptr), shape=(n, VOCAB))


def _percentiles(times: list[float]) -> tuple[float, float]:
    return tuple(round(float(np.percentile(times, q)) * 1000, 2) for q in (50, 95))


def _recall(found: list[set[int]], exact: list[np.ndarray]) -> float:
    return round(float(np.mean([len(f & set(e[e >= 0].tolist())) / max(1, (e >= 0).sum())
                                for f, e in zip(found, exact)])), 4)


def scatter_scores(inverted, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(num_documents,) float32 dot products of one query with every document, the other way exact scoring can
    go: each query term's postings in ``inverted`` (vocabulary, num_documents), scaled by its weight, added into one
    dense vector (no sparse result as scipy's CSR x CSR product builds)."""
    scores = np.zeros(inverted.shape[1], np.float32)
    indptr, indices, data = inverted.indptr, inverted.indices, inverted.data
    for term, weight in zip(terms.tolist(), weights.tolist()):
        span = slice(indptr[term], indptr[term + 1])
        scores[indices[span]] += data[span] * np.float32(weight)  # a posting list names each document once
    return scores


SEARCH_GRID = [(10, 0.7), (10, 0.9), (20, 0.7), (20, 0.9), (30, 0.9)]  # (query_cut, heap_factor) tried besides ours


def one_size(n: int, queries: int) -> dict:
    """Build both indexes over ``n`` synthetic documents in a scratch folder and time them (run in a child)."""
    import tempfile

    import seismic

    from embedkit.config import SeismicConfig
    from embedkit.index.sparse_index import build_seismic, top_k

    start = time.perf_counter()
    docs = synthetic(n, DOC_TERMS, seed=1)
    qs = synthetic(queries, QUERY_TERMS, seed=2)
    out = {"documents": n, "queries": queries, "document_terms": round(docs.nnz / n, 1),
           "query_terms": round(qs.nnz / queries, 1), "generate_s": round(time.perf_counter() - start, 2),
           "exact_matrix_mb": round((docs.data.nbytes + docs.indices.nbytes + docs.indptr.nbytes) / 2**20, 1)}
    options = SeismicConfig()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_seismic(docs, Path(tmp), options)
        out["seismic_build_s"] = round(time.perf_counter() - start, 2)
        out["peak_rss_after_seismic_build_mb"] = peak_rss_mb()
        index = seismic.SeismicIndex.load(str(Path(tmp) / "seismic.index.seismic"))
        out["seismic_file_mb"] = round((Path(tmp) / "seismic.index.seismic").stat().st_size / 2**20, 1)
    start = time.perf_counter()
    inverted = docs.T.tocsr()  # (vocabulary, documents): what sparse-exact builds when opened
    out["exact_build_s"] = round(time.perf_counter() - start, 2)
    del docs
    # Exact, two ways: what sparse-exact does (scipy's CSR x CSR product of the query row and the postings, a
    # sparse result made dense), and a scatter of each query term's postings into one dense score vector.
    exact, times, times_scatter = [], [], []
    out["exact_variants_differ"] = 0
    for i in range(queries):
        row = qs[i]
        t = time.perf_counter()
        want = top_k((row @ inverted).toarray().astype(np.float32), 10)[1][0]
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = top_k(scatter_scores(inverted, row.indices, row.data)[None], 10)[1][0]
        times_scatter.append(time.perf_counter() - t)
        exact.append(want)
        out["exact_variants_differ"] += int(set(want.tolist()) != set(got.tolist()))
    out["exact_p50_ms"], out["exact_p95_ms"] = _percentiles(times)
    out["exact_scatter_p50_ms"], out["exact_scatter_p95_ms"] = _percentiles(times_scatter)
    string = seismic.get_seismic_string()
    comps = [qs[i].indices.astype(str).astype(string) for i in range(queries)]
    vals = [qs[i].data.astype(np.float32) for i in range(queries)]
    settings = [(options.query_cut, options.heap_factor)] + [g for g in SEARCH_GRID
                                                              if g != (options.query_cut, options.heap_factor)]
    out["seismic_grid"] = []
    for query_cut, heap_factor in settings:
        found, times = [], []
        for i in range(queries):
            t = time.perf_counter()
            hits = index.search(str(i), comps[i], vals[i], k=10, query_cut=query_cut, heap_factor=heap_factor)
            times.append(time.perf_counter() - t)
            found.append({int(d) for _, _, d in hits})
        p50, p95 = _percentiles(times)
        out["seismic_grid"].append({"query_cut": query_cut, "heap_factor": heap_factor, "p50_ms": p50, "p95_ms": p95,
                                    "recall@10": _recall(found, exact)})
        if (query_cut, heap_factor) == (options.query_cut, options.heap_factor):
            out["seismic_p50_ms"], out["seismic_p95_ms"], out["seismic_recall@10"] = p50, p95, _recall(found, exact)
            single = found
    # batch_search: all queries in one call, on 1 thread and on the default (all cores), twice each; does it
    # return what search returns?
    ids = np.array([str(i) for i in range(queries)], dtype=string)
    out["batch_search"] = []
    for threads in (1, 0, 0):
        t = time.perf_counter()
        lists = index.batch_search(ids, comps, vals, k=10, query_cut=options.query_cut,
                                   heap_factor=options.heap_factor, num_threads=threads)
        took = time.perf_counter() - t
        by_query = {hits[0][0]: {int(d) for _, _, d in hits} for hits in lists if hits}
        same = sum(by_query.get(str(i), set()) == single[i] for i in range(queries))
        out["batch_search"].append({"num_threads": threads, "ms_per_query": round(took * 1000 / queries, 3),
                                    "same_as_search": f"{same}/{queries}"})
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def lexical_minilm(folder: Path) -> Path:
    from embedkit.config import ModelConfig, SparseConfig
    from embedkit.models.sparse import build_sparse_model, lexical_head
    from embedkit.quickstart import packaged_minilm

    model = build_sparse_model(ModelConfig(name=packaged_minilm(), max_seq_length=128), SparseConfig())
    lexical_head(model)
    model.save(str(folder))
    return folder


def encode_throughput(model_dir: Path, texts: list[str]) -> dict:
    import torch
    from sentence_transformers import SparseEncoder

    from embedkit.models.sparse import SparseVectorEncoder, to_csr

    reference = SparseEncoder(str(model_dir), device="cpu")
    ours = SparseVectorEncoder(SparseEncoder(str(model_dir), device="cpu"), batch_size=32)
    ours.encode_documents(texts[:32])
    reference.encode_document(texts[:32], batch_size=32)
    start = time.perf_counter()
    got = ours.encode_documents(texts)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    want = to_csr(reference.encode_document(texts, batch_size=32, convert_to_sparse_tensor=True), ours.dim)
    ref_s = time.perf_counter() - start
    return {"texts": len(texts), "threads": torch.get_num_threads(),
            "embedkit_docs_per_s": round(len(texts) / ours_s, 1),
            "sentence_transformers_docs_per_s": round(len(texts) / ref_s, 1),
            "max_abs_difference": float(abs(got - want).max()) if got.nnz else 0.0,
            "mean_document_terms": round(got.nnz / len(texts), 1)}


def quality(model_dir: Path, work: Path, docs: int, queries: int, trained: Path | None = None) -> dict:
    """nDCG@10 of sparse, dense and their RRF on the quickstart's held-out stdlib functions; with ``trained`` (a
    sparse model fine-tuned on the quickstart's site-packages pairs), its rows too."""
    from embedkit.config import EvalOptions, IndexSettings, RetrieveConfig
    from embedkit.data.corpus import Corpus
    from embedkit.evaluate.runner import evaluate
    from embedkit.index.build import build_index
    from embedkit.quickstart import packaged_minilm, prepare_data

    data = prepare_data(work, train_size=1, eval_size=docs, num_queries=queries)[1]
    dense_dir = work / "dense-index"
    if not dense_dir.exists():
        build_index(packaged_minilm(), Corpus(str(data)), dense_dir, IndexSettings(batch_size=32), progress=False)
    options = EvalOptions(use_cache=False, batch_size=32)
    rows = {}
    runs = [("sparse (untrained lexical SPLADE-MiniLM)", str(model_dir), RetrieveConfig()),
            ("dense (MiniLM)", packaged_minilm(), RetrieveConfig()),
            ("rrf(sparse, dense)", str(model_dir), RetrieveConfig(fuse_with=[str(dense_dir)]))]
    if trained is not None:
        runs += [("sparse (lexical SPLADE-MiniLM fine-tuned)", str(trained), RetrieveConfig()),
                 ("rrf(fine-tuned sparse, dense)", str(trained), RetrieveConfig(fuse_with=[str(dense_dir)]))]
    for name, model, retrieve in runs:
        r = evaluate(model, data, EvalOptions(**{**options.__dict__, "retrieve": retrieve}))
        rows[name] = {k: r.get(k) for k in ("ndcg@10", "recall@100", "mean_query_terms", "mean_document_terms",
                                            "index_bytes", "seconds")}
    out = {"data": "quickstart code search (stdlib functions)", "documents": docs, "queries": queries, "rows": rows}
    if trained is not None:
        out["fine_tuned"] = {"model": str(trained), **_training_of(trained)}
    return out


def _training_of(folder: Path) -> dict:
    """What the fine-tuned model's manifest says about its training (steps, batch, learning rate, data)."""
    manifest = json.loads((folder / "embedkit.json").read_text(encoding="utf-8"))
    recipe = manifest.get("recipe", {})
    return {"start": recipe.get("model", {}).get("name"), "training": recipe.get("training", {}),
            "sparse": recipe.get("sparse", {}), "train_data": recipe.get("data", {}).get("train")}


def eval_time(model_dir: Path, work: Path, docs: int, queries: int, repeats: int = 2) -> dict:
    """``embedkit eval`` (index build included) against sentence-transformers' SparseInformationRetrievalEvaluator
    on the same held-out data, alternating which goes first (``repeats`` rounds; the best time of each counts, as
    other jobs share the cores), both loading the model themselves."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    from embedkit.config import EvalOptions
    from embedkit.data.beir import load_beir
    from embedkit.evaluate.runner import evaluate
    from embedkit.quickstart import prepare_data

    data_dir = prepare_data(work, train_size=1, eval_size=docs, num_queries=queries)[1]
    data = load_beir(data_dir, "test")
    corpus = dict(iter(data.corpus))

    def ours() -> float:
        return evaluate(str(model_dir), data_dir, EvalOptions(use_cache=False, batch_size=32, k=10))["ndcg@10"]

    def theirs() -> float:
        evaluator = SparseInformationRetrievalEvaluator(
            queries=data.queries, corpus=corpus, batch_size=32, write_csv=False, show_progress_bar=False,
            relevant_docs={q: {d for d, s in judged.items() if s > 0} for q, judged in data.qrels.items()})
        return evaluator(SparseEncoder(str(model_dir), device="cpu"))["dot_ndcg@10"]

    times: dict[str, list[float]] = {"embedkit": [], "sentence_transformers": []}
    scores = {}
    for round_ in range(repeats):
        order = [("embedkit", ours), ("sentence_transformers", theirs)]
        for name, run in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            scores[name] = run()
            times[name].append(round(time.perf_counter() - start, 2))
    best = {name: min(t) for name, t in times.items()}
    return {"data": "quickstart code search (stdlib functions), held out from training", "documents": len(corpus),
            "queries": len(data.queries), "seconds": times, "ndcg@10": scores,
            "ndcg_difference": round(abs(scores["embedkit"] - scores["sentence_transformers"]), 5),
            "time_ratio": round(best["embedkit"] / best["sentence_transformers"], 3),
            "load_average": list(os.getloadavg())}


def render(result: dict) -> str:
    """docs/measurements/sparse.md from a results JSON (``--render``): every figure comes from that file."""
    m = result["machine"]
    lines = ["# Sparse (SPLADE) measurements", "",
             f"Made by `eval/sparse_bench.py` ({result['started']}) on {m['cpu']}, {m['cpus']} CPUs, no GPU. "
             f"{m['note'][0].upper() + m['note'][1:]}: load average {m['load_average'][0]:.1f} at the start, "
             f"{m.get('load_average_end', [float('nan')])[0]:.1f} at the end, so absolute times are pessimistic; "
             "the comparisons within a table ran side by side. Raw numbers: `eval/results/sparse_bench.json`.", ""]
    if "parts_rerun" in result:
        rerun = result["parts_rerun"]
        redone = [part for part in ("encode", "search", "eval", "quality") if part not in rerun["sections_skipped"]]
        lines[-2] += (f" The {', '.join(redone)} part{'s' if len(redone) > 1 else ''} ran again at "
                      f"{rerun['started']} (load average {rerun['machine']['load_average'][0]:.1f} at its start); "
                      "a row measured on its own says so below its table.")
    if "encode" in result:
        e = result["encode"]
        lines += ["## Encoding", "",
                  f"{e['texts']} stdlib functions (up to 128 tokens), batch 32, {e['threads']} torch threads; "
                  f"the outputs differ by at most {e['max_abs_difference']:.2g}.", "",
                  "| encoder | documents/s |", "|---|---|",
                  f"| embedkit (chunked vocabulary projection, CSR out) | {e['embedkit_docs_per_s']} |",
                  f"| `SparseEncoder.encode_document` | {e['sentence_transformers_docs_per_s']} |", ""]
    if result.get("search"):
        lines += ["## Exact vs Seismic", "",
                  "Synthetic SPLADE-like vectors (Zipf-like vocabulary of 30,522 terms, ~120 terms a document, ~30 "
                  "a query), built in chunks; one query per call; Seismic built at its own defaults (`n_postings` "
                  "3500, `centroid_fraction` 0.1, `summary_energy` 0.4: `index.seismic`) and searched at embedkit's "
                  "defaults (`query_cut` 20, `heap_factor` 0.7; Seismic's `search` has no defaults of its own); "
                  "recall@10 against exact. Exact is what `sparse-exact` runs: scipy's CSR x CSR product of the "
                  "query and the postings; *scatter* adds each query term's postings into one dense vector instead.",
                  "",
                  "| documents | exact p50 / p95 ms | scatter p50 ms | Seismic p50 / p95 ms | Seismic recall@10 | "
                  "Seismic build s | CSR MB | Seismic file MB | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
        for r in result["search"]:
            if "error" in r:
                lines.append(f"| {r['documents']:,} | failed: {' '.join(r['error'])} ||||||||")
                continue
            lines.append(f"| {r['documents']:,} | {r['exact_p50_ms']} / {r['exact_p95_ms']} | "
                         f"{r.get('exact_scatter_p50_ms', '-')} | {r['seismic_p50_ms']} / "
                         f"{r['seismic_p95_ms']} | {r['seismic_recall@10']} | {r['seismic_build_s']} | "
                         f"{r['exact_matrix_mb']} | {r['seismic_file_mb']} | {r['peak_rss_mb']} |")
        done = [r for r in result["search"] if "error" not in r]
        faster = [f"{r['documents']:,}" for r in done if r["seismic_p50_ms"] < r["exact_p50_ms"]]
        largest = max((r["documents"] for r in done), default=0)
        lines += ["", f"Seismic's p50 is below exact's at: {', '.join(faster) or 'none of the sizes measured'}. "
                  f"The largest corpus measured here is {largest:,} documents"
                  + ("" if largest >= 1_000_000 else " (1M was not reached in this run)") + ". Peak RSS is the "
                  "whole measuring process (the synthetic matrix, Seismic's build, the inverted matrix, Python)."]
        for r in done:
            if "run" in r:
                lines += ["", f"The {r['documents']:,} row: `{r['run']['command']}` on its own, {r['run']['started']} "
                          f"to {r['run']['finished']}, load average {r['run']['load_average']}."]
        grids = [r for r in done if r.get("seismic_grid")]
        if grids:
            lines += ["", "Seismic's search settings on the same index (p50 ms / recall@10):", "",
                      "| documents | " + " | ".join(f"cut {g['query_cut']}, heap {g['heap_factor']}"
                                                    for g in grids[-1]["seismic_grid"]) + " |",
                      "|---|" + "---|" * len(grids[-1]["seismic_grid"])]
            for r in grids:
                lines.append(f"| {r['documents']:,} | " + " | ".join(f"{g['p50_ms']} / {g['recall@10']}"
                                                                  for g in r["seismic_grid"]) + " |")
            lines += ["", "`batch_search` (all queries in one call; what the `seismic` backend runs, on 1 thread) "
                      "against one `search` per query:", "", "| documents | threads | ms a query | same top 10 as "
                      "`search` |", "|---|---|---|---|"]
            for r in grids:
                for b in r.get("batch_search", []):
                    lines.append(f"| {r['documents']:,} | {b['num_threads'] or 'all (Rayon default)'} | "
                                 f"{b['ms_per_query']} | {b['same_as_search']} |")
        lines.append("")
    if "eval" in result:
        e = result["eval"]
        lines += ["## `embedkit eval` against `SparseInformationRetrievalEvaluator`", "",
                  f"{e['data']}: {e['documents']} documents, {e['queries']} queries, batch 32, the untrained lexical "
                  "SPLADE-MiniLM; each side loads the model and encodes queries and documents itself (embedkit also "
                  "writes its index). Rounds alternate which goes first; seconds of each round:", "",
                  "| | seconds (each round) | nDCG@10 |", "|---|---|---|",
                  f"| `embedkit eval` | {', '.join(map(str, e['seconds']['embedkit']))} | "
                  f"{e['ndcg@10']['embedkit']:.4f} |",
                  f"| `SparseInformationRetrievalEvaluator` | "
                  f"{', '.join(map(str, e['seconds']['sentence_transformers']))} | "
                  f"{e['ndcg@10']['sentence_transformers']:.4f} |", "",
                  f"Best round against best round: embedkit takes {e['time_ratio']}x the evaluator's time; nDCG@10 "
                  f"differs by {e['ndcg_difference']}. Load average during this part: "
                  f"{e['load_average'][0]:.1f}.", ""]
    if "quality" in result:
        q = result["quality"]
        lines += ["## Sparse, dense and their fusion", "",
                  f"{q['data']}: {q['documents']} documents, {q['queries']} queries. The first sparse model is "
                  "*untrained* (MiniLM with an identity head transform, `embedkit.models.sparse.lexical_head`)."
                  + (" The fine-tuned one is that start trained with `recipes/quickstart-sparse.yaml` for "
                     f"{q['fine_tuned']['training'].get('max_steps')} steps of "
                     f"{q['fine_tuned']['training'].get('batch_size')} pairs (learning rate "
                     f"{q['fine_tuned']['training'].get('learning_rate')}) on the quickstart's site-packages pairs, "
                     "disjoint from these stdlib functions." if "fine_tuned" in q else ""), "",
                  "| method | nDCG@10 | Recall@100 | query terms | document terms |", "|---|---|---|---|---|"]
        for name, r in q["rows"].items():
            lines.append(f"| {name} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r.get('mean_query_terms') or '-'} "
                         f"| {r.get('mean_document_terms') or '-'} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--encode-texts", type=int, default=256)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--eval-queries", type=int, default=500)
    ap.add_argument("--work", default="/tmp/embedkit-sparse-bench")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "sparse_bench.json"))
    ap.add_argument("--fine-tuned", metavar="DIR", help="A sparse model fine-tuned from the lexical start (see the "
                    "sparse guide) to add to the quality table, with its RRF with dense.")
    ap.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--render", metavar="MD", help="Write the measurements page from --out's JSON and stop.")
    ap.add_argument("--skip", nargs="*", default=[], choices=["encode", "search", "eval", "quality"])
    args = ap.parse_args()
    if args.one_size:
        print(json.dumps(one_size(args.one_size, args.queries)))
        return
    if args.render:
        Path(args.render).write_text(render(json.loads(Path(args.out).read_text())) + "\n", encoding="utf-8")
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    result = {"machine": machine(), "started": started}
    if args.skip and out_path.is_file():  # a part run on its own: the other parts' results are kept
        result = json.loads(out_path.read_text()) | {"parts_rerun": {"sections_skipped": args.skip,
                                                                      "started": started, "machine": machine()}}

    def save():  # the load at the end of this run: the rerun's own when only some parts ran
        result.get("parts_rerun", result)["machine"]["load_average_end"] = list(os.getloadavg())
        save_json(result, out_path)

    model_dir = work / "splade-minilm"
    if not (model_dir / "modules.json").exists():
        lexical_minilm(model_dir)
    if "encode" not in args.skip:
        from embedkit.data.code_corpus import iter_code_pairs, stdlib_root

        texts = [p.code for p in iter_code_pairs(stdlib_root(), limit=args.encode_texts)]
        result["encode"] = encode_throughput(model_dir, texts)
        save()
    if "search" not in args.skip:
        kept = [r for r in result.get("search", []) if r.get("documents") not in args.sizes]  # other sizes' rows
        result["search"] = kept
        for n in args.sizes:
            try:
                result["search"].append(run_json_child(__file__, ["--one-size", str(n), "--queries", str(args.queries)],
                                                       cwd=ROOT))
            except ChildFailed as exc:
                result["search"].append({"documents": n, "error": [exc.last_line]})
                save()
                break
            result["search"].sort(key=lambda r: r["documents"])
            save()
    if "eval" not in args.skip:
        result["eval"] = eval_time(model_dir, work / "eval-time", args.docs, args.eval_queries)
        save()
    if "quality" not in args.skip:
        result["quality"] = quality(model_dir, work / "quality", args.docs, args.eval_queries,
                                    Path(args.fine_tuned) if args.fine_tuned else None)
        save()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
