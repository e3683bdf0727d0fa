"""The report keeps a sparse model's own row and its hybrid rows (the same model fused or reranked) apart, beside
the dense and BM25 rows, as `embedkit eval` writes them (the result's ``method``)."""

from __future__ import annotations

import json

from embedkit.evaluate.report import load_results, render_markdown


def _write(folder, stem, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    data = {"dataset": "stdlib-code", "split": "test", "k": 10, "recall@10": 0.9, "max_length": 128,
            "long_documents": "truncate", "protocol": "beir", **fields}
    (folder / f"{stem}.json").write_text(json.dumps(data), encoding="utf-8")


def test_sparse_and_hybrid_rows(tmp_path):
    runs = tmp_path / "eval"
    _write(runs, "sparse", model="runs/splade", kind="sparse", method="sparse", **{"ndcg@10": 0.512})
    _write(runs, "hybrid", model="runs/splade", kind="sparse", method="rrf(sparse,dense)", **{"ndcg@10": 0.634})
    _write(runs, "three", model="runs/splade", kind="sparse", method="rrf(sparse,dense,bm25)", **{"ndcg@10": 0.641})
    _write(runs, "dense", model="runs/minilm", kind="dense", method="dense", **{"ndcg@10": 0.598})
    _write(runs, "bm25", model="bm25", kind="bm25", method="bm25", **{"ndcg@10": 0.401})
    results = load_results([runs])
    assert len(results) == 5  # the fused results are not taken for repeats of the sparse one
    table = render_markdown(results)
    header = next(line for line in table.splitlines() if line.startswith("| dataset"))
    row = next(line for line in table.splitlines() if line.startswith("| stdlib"))
    cells = dict(zip(header.strip("| ").split(" | "), row.strip("| ").split(" | ")))
    assert cells == {"dataset": cells["dataset"], "bm25": "40.1", "runs/minilm": "59.8",
                     "runs/splade (rrf(sparse,dense))": "63.4", "runs/splade (rrf(sparse,dense,bm25))": "64.1",
                     "runs/splade (sparse)": "51.2"}


def test_a_repeated_result_still_replaces_the_earlier_one(tmp_path):
    _write(tmp_path / "a", "sparse", model="runs/splade", kind="sparse", method="sparse", **{"ndcg@10": 0.5})
    _write(tmp_path / "b", "sparse", model="runs/splade", kind="sparse", method="sparse", **{"ndcg@10": 0.6})
    results = load_results([tmp_path / "a", tmp_path / "b"])
    assert [r["ndcg@10"] for r in results] == [0.6]
