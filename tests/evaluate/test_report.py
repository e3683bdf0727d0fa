"""`embedkit report`: results JSON → markdown beside the paper's Table 1, and a PNG chart."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from embedkit.data.benchmarks import BEIR_15, CQADUPSTACK_FORUMS
from embedkit.errors import EmbedkitError
from embedkit.evaluate.report import (
    PAPER_TABLE_1,
    chart_figure,
    load_results,
    render_markdown,
    write_chart,
    write_report,
)


def _result(folder: Path, stem: str, **fields) -> Path:
    """One file as `embedkit eval` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {"recall@100": 0.8, "mrr@10": 0.4, "map@100": 0.35, "split": "test", "num_queries": 10,
            "num_documents": 100, "max_length": 512, "long_documents": "truncate",
            "per_query": {"ndcg@10": {"q1": 0.5}}, "seconds": {"encode": 1.0, "search": 0.1},
            "embedkit_version": "0.1.0", **fields}
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture()
def results_dirs(tmp_path) -> list[Path]:
    dpr = tmp_path / "dpr"
    model = {"model": "runs/mb-dpr", "kind": "dense"}
    _result(dpr, "scifact", **model, dataset="beir/scifact", **{"ndcg@10": 0.702})
    _result(dpr, "nfcorpus", **model, dataset="beir/nfcorpus", **{"ndcg@10": 0.331})
    _result(dpr, "mldr", **model, dataset="mldr", max_length=8192, **{"ndcg@10": 0.2512})
    _result(dpr, "mldr-chunks", **model, dataset="mldr", long_documents="chunk-maxpool", **{"ndcg@10": 0.3107})
    _result(dpr, "csn-python", **model, dataset="csn/python", **{"ndcg@10": 0.5})
    for forum in CQADUPSTACK_FORUMS[:3]:
        _result(dpr / "cqadupstack", forum, **model, dataset=f"beir/cqadupstack/{forum}", **{"ndcg@10": 0.4})
    colbert = tmp_path / "colbert-run"  # no "model" key: the folder names the model
    for name in BEIR_15[:-1]:
        _result(colbert, name.replace("/", "_"), kind="colbert", dataset=name, **{"ndcg@10": 0.5})
    for forum in CQADUPSTACK_FORUMS:
        _result(colbert, f"cqa-{forum}", kind="colbert", dataset=f"beir/cqadupstack/{forum}", **{"ndcg@10": 0.44})
    _result(colbert, "sqa", kind="colbert", dataset="coir/stackoverflow-qa", **{"ndcg@10": 0.7})
    (colbert / "embedkit-index.json").write_text(json.dumps({"kind": "colbert"}))  # not a result: skipped
    # The same DPR model scored under MTEB's self-hit protocol: a row of its own, never averaged with BEIR's.
    _result(dpr / "mteb", "scifact", **model, dataset="beir/scifact", protocol="mteb", **{"ndcg@10": 0.71})
    bm25 = tmp_path / "bm25"  # BM25 gets its own columns, not the DPR ones
    _result(bm25, "scifact", model="bm25", kind="bm25", dataset="beir/scifact", long_documents="whole",
            protocol="beir", **{"ndcg@10": 0.665})
    _result(bm25, "mldr", model="bm25", kind="bm25", dataset="mldr", long_documents="whole", **{"ndcg@10": 0.23})
    return [dpr, colbert, bm25]


EXPECTED = """\
# Retrieval results

nDCG@10 ×100 per dataset, one column per model. *long docs*: documents longer than max_length were truncated \
(`truncate`) or split into chunks scored by their best chunk (`chunk-maxpool`). *protocol*: hits on the \
query's own id dropped on every set (`beir`) or only where the MTEB task opts in (`mteb`). **Not like for like**: \
the models read documents up to different lengths (tokens) on mldr: runs/mb-dpr (truncate, beir) 8192, \
runs/mb-dpr (chunk-maxpool, beir) 512; part of a difference in score can be the length.

| dataset | bm25 | colbert-run | runs/mb-dpr (truncate, beir) | runs/mb-dpr (truncate, mteb) | runs/mb-dpr (chunk-maxpool, beir) |
|---|---|---|---|---|---|
| beir/nfcorpus | — | 50.0 | 33.1 | — | — |
| beir/scifact | 66.5 | 50.0 | 70.2 | 71.0 | — |
| beir/trec-covid | — | 50.0 | — | — | — |
| beir/fiqa | — | 50.0 | — | — | — |
| beir/arguana | — | 50.0 | — | — | — |
| beir/climate-fever | — | 50.0 | — | — | — |
| beir/dbpedia-entity | — | 50.0 | — | — | — |
| beir/fever | — | 50.0 | — | — | — |
| beir/hotpotqa | — | 50.0 | — | — | — |
| beir/msmarco | — | 50.0 | — | — | — |
| beir/nq | — | 50.0 | — | — | — |
| beir/quora | — | 50.0 | — | — | — |
| beir/scidocs | — | 50.0 | — | — | — |
| beir/webis-touche2020 | — | 50.0 | — | — | — |
| beir/cqadupstack | — | 44.0 | 40.0 (3 of 12 sets) | — | — |
| mldr | 23.0 | — | 25.1 | — | 31.1 |
| csn/python | — | — | 50.0 | — | — |
| coir/stackoverflow-qa | — | 70.0 | — | — | — |

## Next to the ModernBERT paper

nDCG@10 ×100. Paper rows: ModernBERT paper (arXiv 2412.13663), Table 1. BEIR is the mean of 15 sets with \
CQADupStack first averaged over its 12 forums; CSN is the mean of CodeSearchNet's 6 languages (CoIR); SQA is \
CoIR StackOverflow-QA. `(k of n sets)` marks a mean over only k of the n sets: it is not comparable with the \
paper's number. *long docs*: how documents longer than max_length were handled (`truncate`, or \
`chunk-maxpool`: split into chunks, a document scores as its best chunk). *protocol*: hits on the query's own \
id dropped on every set (`beir`) or only where the MTEB task opts in (`mteb`); the paper's DPR rows come from \
MTEB, its ColBERT rows from PyLate (which never drops them).

| model | kind | long docs | protocol | DPR BEIR | DPR MLDR-OOD | DPR MLDR-ID | ColBERT BEIR | ColBERT MLDR-OOD | BM25 BEIR | BM25 MLDR-OOD | CSN | SQA |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| ModernBERT-base (paper) | paper | — | — | 41.6 | 27.4 | 44.0 | 51.3 | 80.2 | — | — | 56.4 | 73.6 |
| ModernBERT-large (paper) | paper | — | — | 44.0 | 34.3 | 48.6 | 52.4 | 80.4 | — | — | 59.5 | 83.9 |
| BERT-base (paper) | paper | — | — | 38.9 | 23.9 | 32.2 | 49.0 | 28.1 | — | — | 41.2 | 59.5 |
| GTE-en-MLM-base (paper) | paper | — | — | 41.4 | 34.3 | 44.4 | 48.2 | 69.3 | — | — | 44.9 | 71.4 |
| bm25 | bm25 | whole | beir | — | — | — | — | — | 66.5 (1 of 15 sets) | 23.0 | — | — |
| colbert-run | colbert | truncate | beir | — | — | — | 49.6 | — | — | — | — | 70.0 |
| runs/mb-dpr (truncate, beir) | dense | truncate | beir | 51.6 (2 of 15 sets) | 25.1 | — | — | — | — | — | 50.0 (1 of 6 sets) | — |
| runs/mb-dpr (truncate, mteb) | dense | truncate | mteb | 71.0 (1 of 15 sets) | — | — | — | — | — | — | — | — |
| runs/mb-dpr (chunk-maxpool, beir) | dense | chunk-maxpool | beir | — | 31.1 | — | — | — | — | — | — | — |
"""  # noqa: E501 - the report's tables are as wide as it renders them


def test_markdown_snapshot(results_dirs):
    assert render_markdown(load_results(results_dirs)) == EXPECTED


def test_paper_figures_are_table_1():
    assert PAPER_TABLE_1["ModernBERT-base"] == {"DPR BEIR": 41.6, "DPR MLDR-OOD": 27.4, "DPR MLDR-ID": 44.0,
                                                "ColBERT BEIR": 51.3, "ColBERT MLDR-OOD": 80.2, "CSN": 56.4,
                                                "SQA": 73.6}
    assert set(PAPER_TABLE_1) == {"ModernBERT-base", "ModernBERT-large", "BERT-base", "GTE-en-MLM-base"}


def test_load_results_reads_dirs_and_files(results_dirs, tmp_path):
    results = load_results(results_dirs)
    assert len(results) == 8 + 1 + 14 + 12 + 1 + 2  # dpr (+ its mteb run), colbert, bm25
    assert {r["model"] for r in results} == {"runs/mb-dpr", "colbert-run", "bm25"}
    assert all(Path(r["_file"]).suffix == ".json" for r in results)
    single = load_results([results_dirs[0] / "scifact.json"])
    assert [(r["dataset"], r["model"], r["ndcg@10"]) for r in single] == [("beir/scifact", "runs/mb-dpr", 0.702)]


def test_later_duplicate_wins_with_a_warning(tmp_path, caplog):
    _result(tmp_path / "a", "one", model="m", kind="dense", dataset="beir/scifact", **{"ndcg@10": 0.1})
    _result(tmp_path / "b", "two", model="m", kind="dense", dataset="beir/scifact", **{"ndcg@10": 0.2})
    with caplog.at_level(logging.WARNING):
        results = load_results([tmp_path / "a", tmp_path / "b"])
    assert [r["ndcg@10"] for r in results] == [0.2] and "repeats" in caplog.text


def test_bad_results_name_the_file_and_key(tmp_path):
    bad = _result(tmp_path / "r", "x", model="m", dataset="beir/scifact")
    with pytest.raises(EmbedkitError, match=r"x\.json: no nDCG score"):
        load_results([tmp_path / "r"])
    _result(tmp_path / "r", "x", model="m", dataset="beir/scifact", **{"ndcg@10": "high"})
    with pytest.raises(EmbedkitError, match=r"x\.json: key 'ndcg@10' must be a number"):
        load_results([tmp_path / "r"])
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(EmbedkitError, match=r"x\.json: not valid JSON"):
        load_results([bad])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "manifest.json").write_text("{}")
    with pytest.raises(EmbedkitError, match="no results JSON"):
        load_results([tmp_path / "empty"])
    with pytest.raises(EmbedkitError, match="results path not found"):
        load_results([tmp_path / "missing"])


def test_mldr_in_domain_goes_to_its_column(tmp_path):
    _result(tmp_path / "id", "mldr", model="mb-mldr", kind="dense", dataset="mldr", mldr_setting="id",
            **{"ndcg@10": 0.44})
    _result(tmp_path / "id", "mldr-colbert", model="cb-mldr", kind="colbert", dataset="mldr", mldr_setting="id",
            **{"ndcg@10": 0.5})
    markdown = render_markdown(load_results([tmp_path / "id"]))
    header = next(line for line in markdown.splitlines() if line.startswith("| model |"))
    assert "ColBERT MLDR-ID" in header  # the paper has none; added because a result needs it
    row = next(line for line in markdown.splitlines() if line.startswith("| mb-mldr |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[header.strip("|").split("|").index(" DPR MLDR-ID ")] == "44.0"
    assert "| mldr (MLDR-ID) |" in markdown


def test_chart_and_report_files(results_dirs, tmp_path):
    png = write_chart(load_results(results_dirs), tmp_path / "chart" / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md_path, png_path = write_report(results_dirs, tmp_path / "out")
    assert md_path == tmp_path / "out" / "report.md" and png_path == tmp_path / "out" / "report.png"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md_path.read_text(encoding="utf-8")
    assert text.startswith(EXPECTED) and "![nDCG@10 chart](report.png)" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.md", "report.png"]


# --- a user's own data: the report shows it, with the models named by their runs --------------------------

@pytest.fixture()
def own_results(tmp_path) -> Path:
    """Two models (one trained, named by an absolute path) on two folders of the user's own, as `embedkit run`
    writes them (k = 10: recall@10, no recall@100)."""
    root = tmp_path / "eval"
    model = tmp_path / "runs" / "minilm-code"
    (model).mkdir(parents=True)
    (model / "embedkit.json").write_text("{}")
    for name, folder, scores in ((str(model), "minilm-code", (0.68, 0.55)), ("bm25", "bm25", (0.38, 0.45))):
        for dataset, ndcg in zip(("code", "text"), scores):
            _result(root / folder, dataset, model=name, kind="dense" if name != "bm25" else "lexical",
                    dataset=dataset, k=10, **{"ndcg@10": ndcg, "recall@10": ndcg + 0.2, "mrr@10": ndcg - 0.1,
                                              "map@10": ndcg - 0.1, "recall@100": None})
    for path in root.rglob("*.json"):  # as written at k = 10: no key of a depth beyond k
        data = json.loads(path.read_text())
        data.pop("recall@100"), data.pop("map@100")
        path.write_text(json.dumps(data))
    return root


def test_own_data_gets_a_table_and_bars_per_dataset(own_results, tmp_path):
    results = load_results([own_results])
    assert {r["_name"] for r in results} == {"minilm-code", "bm25"}  # the run's name, not its absolute path
    markdown = render_markdown(results)
    assert "| dataset | bm25 | minilm-code |" in markdown
    assert "| code | 38.0 | 68.0 |" in markdown and "| text | 45.0 | 55.0 |" in markdown
    assert "paper" not in markdown.lower() and str(tmp_path) not in markdown  # no empty paper table, no paths
    figure = chart_figure(results)
    (axes,) = figure.axes
    labels = [t.get_text() for t in axes.get_xticklabels()]
    assert labels == ["code", "text"]
    bars = axes.patches
    assert sorted(round(b.get_height(), 1) for b in bars) == [38.0, 45.0, 55.0, 68.0]
    colours = {tuple(b.get_facecolor()) for b in bars}
    assert len(colours) == 2  # one colour per model...
    legend = {t.get_text(): tuple(h.get_facecolor()) for t, h in
              zip(figure.legends[0].get_texts(), figure.legends[0].legend_handles)}
    assert set(legend) == {"bm25", "minilm-code"} and set(legend.values()) == colours  # ...named by the legend
    by_height = {round(b.get_height(), 1): tuple(b.get_facecolor()) for b in bars}
    assert by_height[68.0] == legend["minilm-code"] and by_height[38.0] == legend["bm25"]


@pytest.mark.parametrize("metric, title, code", [("recall@k", "Recall@10", 88.0), ("mrr@10", "MRR@10", 58.0)])
def test_the_metric_is_chosen(own_results, tmp_path, metric, title, code):
    md_path, png_path = write_report([own_results], tmp_path / "out", metric=metric)
    markdown = md_path.read_text()
    assert markdown.startswith(f"# Retrieval results\n\n{title} ×100") and f"| code | {code - 30:.1f} | {code:.1f} |" \
        in markdown
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(EmbedkitError, match="--metric: 'recall@100' is not one of"):
        write_report([own_results], tmp_path / "out", metric="recall@100")


def test_partial_benchmark_means_are_marked_next_to_the_paper(tmp_path):
    for dataset, score in (("beir/scifact", 0.70), ("beir/nfcorpus", 0.33)):
        _result(tmp_path / "r", dataset.replace("/", "_"), model="mb-dpr", kind="dense", dataset=dataset,
                **{"ndcg@10": score})
    results = load_results([tmp_path / "r"])
    assert "| mb-dpr | dense | truncate | beir | 51.5 (2 of 15 sets) |" in render_markdown(results)
    figure = chart_figure(results)
    per_dataset, paper = figure.axes
    assert [t.get_text() for t in paper.get_xticklabels()] == ["DPR BEIR"]
    ours, *references = sorted(paper.patches, key=lambda b: b.get_x())
    assert ours.get_hatch() == "///" and round(ours.get_height(), 1) == 51.5  # hatched: a partial mean
    assert [round(b.get_height(), 1) for b in references] == [41.6, 44.0] and not any(b.get_hatch() for b in references)
    notes = [t.get_text() for t in paper.texts]
    assert "51.5\n2 of 15 sets" in notes
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "ModernBERT-base (paper)" in legend and any(text.startswith("hatched:") for text in legend)
    assert not any(b.get_hatch() for b in per_dataset.patches)  # single datasets are never partial


def test_old_results_without_k_stay_readable(tmp_path):
    """Results written before k was recorded: recall@k is read from their recall@100 key."""
    _result(tmp_path / "old", "s", model="/somewhere/runs/dpr", kind="dense", dataset="beir/scifact",
            **{"ndcg@10": 0.5})
    (result,) = load_results([tmp_path / "old"])
    assert result["_name"] == "dpr"
    assert "| beir/scifact | 80.0 |" in render_markdown([result], metric="recall@k")


def test_report_says_when_rows_read_documents_at_different_lengths(tmp_path):
    same = tmp_path / "same"
    _result(same, "a", model="tuned", kind="dense", dataset="code", max_length=256, **{"ndcg@10": 0.6})
    _result(same, "b", model="base", kind="dense", dataset="code", max_length=256, **{"ndcg@10": 0.5})
    _result(same, "c", model="bm25", kind="bm25", dataset="code", max_length=None, long_documents="whole",
            **{"ndcg@10": 0.4})
    text = render_markdown(load_results([same]))
    assert "The models read documents up to 256 tokens." in text and "Not like for like" not in text
    _result(same, "b", model="base", kind="dense", dataset="code", max_length=128, **{"ndcg@10": 0.5})
    text = render_markdown(load_results([same]))
    assert "**Not like for like**" in text and "tuned 256" in text and "base 128" in text


def test_a_model_keeps_its_bar_colour_whatever_else_the_chart_holds(tmp_path):
    from embedkit.evaluate.report import _colours

    alone = _colours(["bm25", "minilm-code"])
    more = _colours(["all-MiniLM-L6-v2", "bm25", "minilm-code", "zz-other"])
    assert alone == [more[1], more[2]]
    assert len(set(_colours([f"m{i}" for i in range(20)]))) == 20  # distinct while tab20 has room
