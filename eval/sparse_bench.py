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


def synthetic(n: int, terms: int, seed: int):
    """(n, VOCAB) CSR rows of ``terms`` distinct Zipf-distributed term ids (about), log-normal weights."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 0.8
    p /= p.sum()
    rows, cols = [], []
    step = 50_000
    for start in range(0, n, step):
        m = min(step, n - start)
        c = rng.choice(VOCAB, size=(m, terms), p=p)  # (m, terms), duplicates merged below
        rows.append(np.repeat(np.arange(start, start + m), terms))
        cols.append(c.ravel())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    values = rng.lognormal(0.0, 0.6, size=len(rows)).astype(np.float32)
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(n, VOCAB), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def one_size(n: int, queries: int) -> dict:
    """Build both indexes over ``n`` synthetic documents in a scratch folder and time them (run in a child)."""
    import tempfile

    from embedkit.config import SeismicConfig
    from embedkit.index.sparse_index import build_seismic, top_k

    docs = synthetic(n, DOC_TERMS, seed=1)
    qs = synthetic(queries, QUERY_TERMS, seed=2)
    out = {"documents": n, "queries": queries, "document_terms": round(docs.nnz / n, 1),
           "query_terms": round(qs.nnz / queries, 1)}
    start = time.perf_counter()
    inverted = docs.T.tocsr()  # (vocabulary, documents): what sparse-exact builds when opened
    out["exact_build_s"] = round(time.perf_counter() - start, 2)
    exact, times = [], []
    for i in range(queries):
        t = time.perf_counter()
        exact.append(top_k((qs[i] @ inverted).toarray().astype(np.float32), 10)[1][0])
        times.append(time.perf_counter() - t)
    out["exact_p50_ms"], out["exact_p95_ms"] = (round(float(np.percentile(times, q)) * 1000, 2) for q in (50, 95))
    import seismic

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_seismic(docs, Path(tmp), SeismicConfig())
        out["seismic_build_s"] = round(time.perf_counter() - start, 2)
        index = seismic.SeismicIndex.load(str(Path(tmp) / "seismic.index.seismic"))
        out["seismic_file_mb"] = round((Path(tmp) / "seismic.index.seismic").stat().st_size / 2**20, 1)
    string, options = seismic.get_seismic_string(), SeismicConfig()
    found, times = [], []
    for i in range(queries):
        row = qs[i]
        comps, vals = row.indices.astype(str).astype(string), row.data.astype(np.float32)
        t = time.perf_counter()
        hits = index.search(str(i), comps, vals, k=10, query_cut=options.query_cut, heap_factor=options.heap_factor)
        times.append(time.perf_counter() - t)
        found.append({int(d) for _, _, d in hits})
    out["seismic_p50_ms"], out["seismic_p95_ms"] = (round(float(np.percentile(times, q)) * 1000, 2) for q in (50, 95))
    out["seismic_recall@10"] = round(float(np.mean([len(f & set(e[e >= 0])) / max(1, (e >= 0).sum())
                                                    for f, e in zip(found, exact)])), 4)
    out["exact_matrix_mb"] = round((docs.data.nbytes + docs.indices.nbytes + docs.indptr.nbytes) / 2**20, 1)
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


def quality(model_dir: Path, work: Path, docs: int, queries: int) -> dict:
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
    for name, model, retrieve in [("sparse (untrained lexical SPLADE-MiniLM)", str(model_dir), RetrieveConfig()),
                                  ("dense (MiniLM)", packaged_minilm(), RetrieveConfig()),
                                  ("rrf(sparse, dense)", str(model_dir), RetrieveConfig(fuse_with=[str(dense_dir)]))]:
        r = evaluate(model, data, EvalOptions(**{**options.__dict__, "retrieve": retrieve}))
        rows[name] = {k: r.get(k) for k in ("ndcg@10", "recall@100", "mean_query_terms", "mean_document_terms",
                                            "index_bytes", "seconds")}
    return {"data": "quickstart code search (stdlib functions)", "documents": docs, "queries": queries, "rows": rows}


def render(result: dict) -> str:
    """docs/measurements/sparse.md from a results JSON (``--render``): every figure comes from that file."""
    m = result["machine"]
    lines = ["# Sparse (SPLADE) measurements", "",
             f"Made by `eval/sparse_bench.py` ({result['started']}) on {m['cpu']}, {m['cpus']} CPUs, no GPU. "
             f"{m['note'][0].upper() + m['note'][1:]}: load average {m['load_average'][0]:.1f} at the start, "
             f"{m.get('load_average_end', [float('nan')])[0]:.1f} at the end, so absolute times are pessimistic; "
             "the comparisons within a table ran side by side. Raw numbers: `eval/results/sparse_bench.json`.", ""]
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
                  "a query); one query per call; Seismic at its default settings (`index.seismic`); recall@10 "
                  "against exact.", "",
                  "| documents | exact p50 / p95 ms | Seismic p50 / p95 ms | Seismic recall@10 | Seismic build s "
                  "| CSR MB | Seismic file MB | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
        for r in result["search"]:
            if "error" in r:
                lines.append(f"| {r['documents']:,} | failed: {' '.join(r['error'])} |||||||")
                continue
            lines.append(f"| {r['documents']:,} | {r['exact_p50_ms']} / {r['exact_p95_ms']} | {r['seismic_p50_ms']} / "
                         f"{r['seismic_p95_ms']} | {r['seismic_recall@10']} | {r['seismic_build_s']} | "
                         f"{r['exact_matrix_mb']} | {r['seismic_file_mb']} | {r['peak_rss_mb']} |")
        done = [r for r in result["search"] if "error" not in r]
        faster = [f"{r['documents']:,}" for r in done if r["seismic_p50_ms"] < r["exact_p50_ms"]]
        largest = max((r["documents"] for r in done), default=0)
        lines += ["", f"Seismic's p50 is below exact's at: {', '.join(faster) or 'none of the sizes measured'}. "
                  f"The largest corpus measured here is {largest:,} documents"
                  + ("" if largest >= 1_000_000 else " (1M was not reached in this run: Seismic's build time grows "
                     "with the corpus and the shared cores)") + ". Peak RSS is the whole measuring process (both "
                  "indexes, the synthetic matrices, Python)."]
        lines.append("")
    if "quality" in result:
        q = result["quality"]
        lines += ["## Sparse, dense and their fusion", "",
                  f"{q['data']}: {q['documents']} documents, {q['queries']} queries. The sparse model is *untrained* "
                  "(MiniLM with an identity head transform, `embedkit.models.sparse.lexical_head`): the row shows "
                  "the wiring, not what a trained SPLADE reaches.", "",
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
    ap.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--render", metavar="MD", help="Write the measurements page from --out's JSON and stop.")
    ap.add_argument("--skip", nargs="*", default=[], choices=["encode", "search", "quality"])
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

    def save():
        result["machine"]["load_average_end"] = list(os.getloadavg())
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
    if "quality" not in args.skip:
        result["quality"] = quality(model_dir, work / "quality", args.docs, args.eval_queries)
        save()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
