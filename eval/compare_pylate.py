"""embedkit's ColBERT eval vs the PyLate pipeline a user would write by hand, in one run, on the same data.

Same code-search BEIR folder as ``compare_st.py`` (stdlib functions judged, site-packages distractors), same
ColBERT model (the packaged all-MiniLM-L6-v2 with PyLate's seeded 128-d projection, saved once as a PyLate
folder, or ``--model``), same PLAID settings (4-bit residuals, 8 probes, 4,096 full scores):

- PyLate: ``models.ColBERT.encode`` -> ``indexes.PLAID.add_documents`` -> ``retrieve.ColBERT`` -> pytrec_eval;
- ``embedkit eval`` on PLAID (fast-plaid, ids in JSON, no pickles);
- ``embedkit eval --backend exact``: brute-force MaxSim, the score PLAID approximates;
- a second PyLate PLAID build from the same vectors: fast-plaid's k-means is not reproducible across builds
  (same seed), so its score shows how far two PLAID rows differ by build noise alone.

Prints nDCG@10 and wall time side by side and writes ``eval/results/compare_pylate.json``. PyLate pins an
older stack, so this runs in the PyLate environment (``make install-pylate``), where embedkit's side uses
PyLate as its ColBERT library too (``colbert.library: pylate``):

    .venv-pylate/bin/python eval/compare_pylate.py [--docs 10000] [--queries 500] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchkit.data import build_folder
from benchkit.machine import describe as machine
from benchkit.results import save

os.environ.setdefault("HF_HUB_OFFLINE", "1")

N_FULL_SCORES = 4096  # embedkit's default; PyLate's is 8192, set equal so both do the same work
LIBRARY = "pylate"  # embedkit's ColBERT library here: the comparison is with PyLate's own pipeline


def pylate_pipeline(model_path: str, folder: Path, work: Path, k: int = 100) -> tuple[float, float, float]:
    """nDCG@10 and seconds of the PyLate pipeline, then nDCG@10 of a second PLAID build from the same vectors
    (fast-plaid's k-means is not reproducible across builds, so that is the noise between PLAID rows)."""
    import pytrec_eval
    from pylate import indexes, models, retrieve

    from embedkit.data.beir import load_beir

    start = time.perf_counter()
    data = load_beir(folder)
    docs = list(data.corpus)
    model = models.ColBERT(model_name_or_path=model_path, device="cpu")
    doc_emb = model.encode([t for _, t in docs], batch_size=64, is_query=False, show_progress_bar=True)
    qids = list(data.queries)
    q_emb = model.encode([data.queries[q] for q in qids], batch_size=64, is_query=True)
    scores = []
    for build in range(2):
        index = indexes.PLAID(index_folder=str(work), index_name=f"pylate-{build}", override=True, nbits=4,
                              kmeans_niters=4, n_ivf_probe=8, n_full_scores=N_FULL_SCORES, device="cpu")
        index.add_documents(documents_ids=[d for d, _ in docs], documents_embeddings=doc_emb)
        hits = retrieve.ColBERT(index=index).retrieve(queries_embeddings=q_emb, k=k, device="cpu")
        run = {q: {str(h["id"]): float(h["score"]) for h in hs} for q, hs in zip(qids, hits)}
        per_query = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10"}).evaluate(run)
        scores.append(sum(s["ndcg_cut_10"] for s in per_query.values()) / len(data.qrels))
        if build == 0:
            seconds = time.perf_counter() - start
    return scores[0], seconds, scores[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--model", default=None, help="a PyLate ColBERT folder (default: packaged MiniLM + projection)")
    parser.add_argument("--out", default="eval/results/compare_pylate.json")
    args = parser.parse_args()

    import pylate  # noqa: F401  (import both stacks before timing either)

    from embedkit.config import IndexSettings
    from embedkit.evaluate.runner import EvalOptions, evaluate
    from embedkit.models.colbert import load_colbert_model
    from embedkit.quickstart import packaged_minilm

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["EMBEDKIT_CACHE"] = str(tmp / "cache")
        model = args.model
        if model is None:
            model = str(tmp / "minilm-colbert")
            load_colbert_model(packaged_minilm(), device="cpu", library=LIBRARY).save(model)
        folder = build_folder(tmp / "code", args.docs, args.queries)
        timings, scores = {}, {}
        scores["pylate"], timings["pylate"], scores["pylate_second_build"] = pylate_pipeline(
            model, folder, tmp / "pylate-index")
        for name, backend in (("embedkit_plaid", "plaid"), ("embedkit_exact", "exact")):
            start = time.perf_counter()
            result = evaluate(model, folder, EvalOptions(kind="colbert", use_cache=False),
                              index=IndexSettings(backend=backend), colbert_library=LIBRARY)
            timings[name] = time.perf_counter() - start
            scores[name] = result["ndcg@10"]
    row = {"docs": result["num_documents"], "queries": result["num_queries"],
           "model": args.model or "all-MiniLM-L6-v2 + seeded 128-d projection (untrained)",
           "ndcg@10": scores, "seconds": {k: round(v, 1) for k, v in timings.items()},
           "n_full_scores": N_FULL_SCORES, "machine": machine()}
    labels = {"pylate": "PyLate encode + PLAID + retrieve, pytrec_eval", "embedkit_plaid": "`embedkit eval` (PLAID)",
              "embedkit_exact": "`embedkit eval --backend exact` (MaxSim)"}
    print("| | nDCG@10 | seconds | time / PyLate |\n|---|---|---|---|")
    for name, label in labels.items():
        print(f"| {label} | {scores[name]:.4f} | {timings[name]:.1f} | {timings[name] / timings['pylate']:.2f} |")
    print(f"\nA second PyLate PLAID build from the same vectors scored {scores['pylate_second_build']:.4f}: "
          f"the spread between PLAID builds. ({row['docs']} documents, {row['queries']} queries, {row['machine']})")
    save(row, args.out)


if __name__ == "__main__":
    main()
