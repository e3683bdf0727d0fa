"""Where PLAID starts to pay over exact MaxSim: build and search time of both embedkit ColBERT backends, and
PLAID's top-10 agreement with exact, on synthetic token vectors at growing corpus sizes, in one run.

Encoding costs the same for both backends (the same model encodes the same documents), so it is left out:
the vectors are synthetic (unit 128-d, documents drawn around topic centroids, ~`--tokens` tokens each;
queries of 32 tokens taken near one document's tokens). The numbers set ``index.auto_exact_max_documents``
(the corpus size up to which ``backend: auto`` picks exact MaxSim).

    python eval/colbert_crossover.py --sizes 1000 4000 16000 --queries 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from benchkit.machine import describe
from benchkit.results import save


def synthetic(num_docs: int, tokens: int, dim: int, seed: int = 0) -> tuple[list[np.ndarray], np.random.Generator]:
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(max(8, num_docs // 50), dim)).astype(np.float32)
    docs = []
    for _ in range(num_docs):
        n = int(np.clip(rng.normal(tokens, tokens / 4), 4, 3 * tokens))
        centre = topics[rng.integers(len(topics), size=n)]
        vecs = centre + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
        docs.append((vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float16))  # (n, dim)
    return docs, rng


def make_queries(docs: list[np.ndarray], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    queries = []
    for i in rng.choice(len(docs), size=count, replace=False):
        picked = docs[i][rng.integers(len(docs[i]), size=32)].astype(np.float32)
        q = picked + 0.3 * rng.normal(size=picked.shape).astype(np.float32)
        queries.append(q / np.linalg.norm(q, axis=1, keepdims=True))  # (32, dim)
    return queries


def measure(backend: str, docs: list[np.ndarray], queries: list[np.ndarray], root: Path) -> dict:
    from embedkit.config import IndexSettings
    from embedkit.index.base import IndexManifest
    from embedkit.index.encode import Shard
    from embedkit.index.registry import get_backend

    folder = root / backend
    shards_dir = folder / "shards"
    shards_dir.mkdir(parents=True)
    shard = Shard(0, len(docs), shards_dir)
    np.save(shard.embeddings_path, np.concatenate(docs))  # (total tokens, dim)
    np.save(shard.lengths_path, np.array([len(d) for d in docs], np.int32))
    impl = get_backend(backend)
    start = time.perf_counter()
    settings = impl.build([shard], folder, IndexSettings(backend=backend), docs[0].shape[1])
    build_s = time.perf_counter() - start
    IndexManifest(kind="colbert", backend=backend, model="synthetic", model_fingerprint="-", embedding_dim=128,
                  normalized=True, num_documents=len(docs), corpus="synthetic", settings=settings).save(folder)
    (folder / "doc_ids.jsonl").write_text("")
    np.save(folder / "doc_id_offsets.npy", np.zeros(0, np.int64))
    index = impl.open(folder, None)
    index.search_encoded(queries[:1], 10)  # warm-up: loading the index and thread pools is not per query
    start = time.perf_counter()
    _, positions = index.search_encoded(queries, 10)
    search_s = time.perf_counter() - start
    return {"build_s": build_s, "search_ms_per_query": 1000 * search_s / len(queries), "positions": positions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--tokens", type=int, default=60, help="mean document length in tokens")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--output", default="eval/results/colbert_crossover.json")
    args = parser.parse_args()
    machine = describe()
    rows = []
    print(f"machine: {machine}; {args.queries} queries of 32 tokens, documents ~{args.tokens} tokens, 128-d\n")
    print("| documents | exact build (s) | PLAID build (s) | exact ms/query | PLAID ms/query | PLAID/exact search "
          "| PLAID top-10 = exact |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        docs, rng = synthetic(size, args.tokens, 128)
        queries = make_queries(docs, args.queries, rng)
        with tempfile.TemporaryDirectory() as tmp:
            exact = measure("exact", docs, queries, Path(tmp))
            plaid = measure("plaid", docs, queries, Path(tmp))
        overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(plaid["positions"].tolist(),
                                                                             exact["positions"].tolist())]))
        ratio = plaid["search_ms_per_query"] / exact["search_ms_per_query"]
        rows.append({"documents": size, "exact_build_s": exact["build_s"], "plaid_build_s": plaid["build_s"],
                     "exact_ms_per_query": exact["search_ms_per_query"],
                     "plaid_ms_per_query": plaid["search_ms_per_query"], "plaid_over_exact_search": ratio,
                     "plaid_top10_overlap": overlap})
        print(f"| {size} | {exact['build_s']:.1f} | {plaid['build_s']:.1f} | {exact['search_ms_per_query']:.1f} | "
              f"{plaid['search_ms_per_query']:.1f} | {ratio:.2f} | {overlap:.3f} |", flush=True)
        # after every size: a run cut short by a time limit keeps the rows it measured
        save({"machine": machine, "args": vars(args), "rows": rows}, args.output)


if __name__ == "__main__":
    main()
