"""``embedkit report``: results JSON files → a markdown table beside the paper's, and a PNG chart.

Reads what ``embedkit eval`` writes (one JSON per model × dataset, with at least ``dataset`` and
``ndcg@10``; ``model`` defaults to the name of the folder given on the command line) and lays the
scores out in the columns of the ModernBERT paper's Table 1. Rows are (model, kind, long-document
mode): ``long_documents`` says whether documents longer than ``max_length`` were truncated or
split into chunks scored by their best chunk (``chunk-maxpool``).

MLDR scores go to the MLDR-OOD column unless the result carries ``"mldr_setting": "id"`` (a model
fine-tuned on MLDR's training split, the paper's MLDR-ID setting). BM25 results get their own
columns (``BM25 BEIR``, ``BM25 MLDR-OOD``), never the DPR ones. The self-hit ``protocol`` a result
was scored under (``beir`` or ``mteb``) is part of its row, so the two are never averaged together.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedkit.errors import EmbedkitError
from embedkit.evaluate.benchmarks import BENCHMARKS, CQADUPSTACK_FORUMS, group_averages

logger = logging.getLogger(__name__)

METRIC = "ndcg@10"
COLUMNS: tuple[str, ...] = ("DPR BEIR", "DPR MLDR-OOD", "DPR MLDR-ID", "ColBERT BEIR", "ColBERT MLDR-OOD", "CSN", "SQA")

# nDCG@10 ×100 from Table 1 of "Smarter, Better, Faster, Longer: A Modern Bidirectional Encoder for
# Fast, Memory Efficient, and Long Context Finetuning and Inference" (Warner et al., arXiv 2412.13663).
# BEIR: mean of 15 sets; MLDR-OOD: MS MARCO-trained model as is; MLDR-ID: further fine-tuned on MLDR
# train; CSN (CodeSearchNet) and SQA (StackOverflow-QA) through CoIR.
PAPER_TABLE_1: dict[str, dict[str, float]] = {
    "ModernBERT-base": {"DPR BEIR": 41.6, "DPR MLDR-OOD": 27.4, "DPR MLDR-ID": 44.0, "ColBERT BEIR": 51.3,
                        "ColBERT MLDR-OOD": 80.2, "CSN": 56.4, "SQA": 73.6},
    "ModernBERT-large": {"DPR BEIR": 44.0, "DPR MLDR-OOD": 34.3, "DPR MLDR-ID": 48.6, "ColBERT BEIR": 52.4,
                         "ColBERT MLDR-OOD": 80.4, "CSN": 59.5, "SQA": 83.9},
    "BERT-base": {"DPR BEIR": 38.9, "DPR MLDR-OOD": 23.9, "DPR MLDR-ID": 32.2, "ColBERT BEIR": 49.0,
                  "ColBERT MLDR-OOD": 28.1, "CSN": 41.2, "SQA": 59.5},
    "GTE-en-MLM-base": {"DPR BEIR": 41.4, "DPR MLDR-OOD": 34.3, "DPR MLDR-ID": 44.4, "ColBERT BEIR": 48.2,
                        "ColBERT MLDR-OOD": 69.3, "CSN": 44.9, "SQA": 71.4},
}

_CHART_REFERENCES = ("ModernBERT-base", "ModernBERT-large")
_DASH = "—"


def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every results JSON under ``paths`` (folders are searched recursively; files are read as given).

    JSON files that are not results (no ``dataset`` key, e.g. manifests) are skipped. A result
    without ``model`` gets the name of the folder it was found under, so ``report runs/a runs/b``
    compares two models. Each dict gains ``_file`` (where it came from). When the same (model,
    kind, dataset, split, long-document mode) appears twice, the later file wins, with a warning.
    """
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    searched: list[str] = []
    for raw in paths:
        root = Path(raw)
        searched.append(str(root))
        if root.is_dir():
            files, default_model = sorted(root.rglob("*.json")), root.resolve().name
        elif root.is_file():
            files, default_model = [root], root.resolve().parent.name
        else:
            raise EmbedkitError(f"results path not found: {root}")
        for path in files:
            result = _read_result(path, default_model)
            if result is None:
                continue
            key = (result["model"], result.get("kind"), result["dataset"], result.get("split"),
                   result.get("long_documents"), result.get("mldr_setting"), _protocol(result))
            if key in found:
                logger.warning("%s repeats %s (%s on %s); using the later file", path, found[key]["_file"],
                               result["model"], result["dataset"])
            found[key] = result
    if not found:
        raise EmbedkitError(f"no results JSON (objects with 'dataset' and '{METRIC}') under {', '.join(searched)}")
    return list(found.values())


def _read_result(path: Path, default_model: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmbedkitError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or "dataset" not in obj:
        logger.debug("skipping %s: not a results file", path)
        return None
    score = obj.get(METRIC)
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
        raise EmbedkitError(f"{path}: key {METRIC!r} must be a number (got {score!r})")
    if obj.get("mldr_setting", "ood") not in ("ood", "id"):
        raise EmbedkitError(f"{path}: key 'mldr_setting' must be 'ood' or 'id' (got {obj['mldr_setting']!r})")
    return {**obj, "model": str(obj.get("model") or default_model), "dataset": str(obj["dataset"]), "_file": str(path)}


def _protocol(result: Mapping[str, Any]) -> str:
    """Results written before the protocol was recorded dropped self-hits on every set: BEIR's."""
    return str(result.get("protocol") or "beir")


_FAMILIES = {"colbert": "ColBERT", "bm25": "BM25", "lexical": "BM25"}  # other kinds: single-vector (DPR)


@dataclass
class _Row:
    model: str
    kind: str
    long_documents: str
    protocol: str
    scores: dict[str, float] = field(default_factory=dict)   # dataset (or "mldr#id") → nDCG@10 in [0, 1]

    @property
    def family(self) -> str:
        return _FAMILIES.get(self.kind.lower(), "DPR")


def _rows(results: Sequence[Mapping[str, Any]]) -> list[_Row]:
    rows: dict[tuple[str, str, str, str], _Row] = {}
    for r in results:
        key = (str(r["model"]), str(r.get("kind") or "?"), str(r.get("long_documents") or "truncate"),
               _protocol(r))
        row = rows.setdefault(key, _Row(*key))
        dataset = str(r["dataset"]) + ("#id" if r.get("mldr_setting") == "id" else "")
        row.scores[dataset] = float(r[METRIC])
    return sorted(rows.values(), key=lambda row: (row.model, row.kind, row.long_documents != "truncate",
                                                  row.long_documents, row.protocol))


def _cell(value: float | None, found: int = 1, expected: int = 1) -> str:
    if value is None:
        return _DASH
    text = f"{100 * value:.1f}"
    return text if found == expected else f"{text} ({found}/{expected})"


def _summary(row: _Row) -> dict[str, tuple[float | None, int, int]]:
    """The paper's columns for one row: (mean in [0, 1] or None, sets found, sets expected)."""
    averages = group_averages({k: v for k, v in row.scores.items() if not k.endswith("#id")})
    beir, csn = averages["beir"], averages["csn"]

    def single(name: str) -> tuple[float | None, int, int]:
        return row.scores.get(name), 1, 1

    return {
        f"{row.family} BEIR": (beir.mean, len(beir.found), beir.expected),
        f"{row.family} MLDR-OOD": single("mldr"),
        f"{row.family} MLDR-ID": single("mldr#id"),
        "CSN": (csn.mean, len(csn.found), csn.expected),
        "SQA": single("coir/stackoverflow-qa"),
    }


def _columns(rows: Sequence[_Row]) -> tuple[str, ...]:
    # The paper has no ColBERT MLDR-ID column; add one only when a result needs it.
    extra = ("ColBERT MLDR-ID",) if any(r.family == "ColBERT" and "mldr#id" in r.scores for r in rows) else ()
    bm25: tuple[str, ...] = ("BM25 BEIR", "BM25 MLDR-OOD") if any(r.family == "BM25" for r in rows) else ()
    bm25 += ("BM25 MLDR-ID",) if any(r.family == "BM25" and "mldr#id" in r.scores for r in rows) else ()
    return COLUMNS[:5] + extra + bm25 + COLUMNS[5:]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_escape(c) for c in cells) + " |" for cells in body]
    return lines


def _dataset_columns(rows: Sequence[_Row]) -> list[str]:
    """Datasets seen, in registry order (CQADupStack forums folded into one), then any others."""
    seen = {name for row in rows for name in row.scores}
    forums = {f"beir/cqadupstack/{f}" for f in CQADUPSTACK_FORUMS}
    ordered: list[str] = []
    for name in BENCHMARKS:
        if name in forums:
            continue
        if name == "beir/cqadupstack" and (seen & forums or name in seen):
            ordered.append(name)
        elif name in seen:
            ordered.append(name)
        if name == "mldr" and "mldr#id" in seen:
            ordered.append("mldr#id")
    ordered += sorted(seen - set(ordered) - forums - set(BENCHMARKS))
    return ordered


def _dataset_cell(row: _Row, name: str) -> str:
    if name == "beir/cqadupstack":
        cqa = group_averages(row.scores)["beir/cqadupstack"]
        return _cell(cqa.mean, len(cqa.found), cqa.expected)
    return _cell(row.scores.get(name))


def render_markdown(results: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: the paper's Table 1 rows, then one row per (model, kind, long-document mode), then
    every dataset's nDCG@10. Values are ×100 with one decimal; ``(k/n)`` marks a mean over only k of
    the n sets it should cover (not comparable with the paper's number)."""
    rows = _rows(results)
    columns = _columns(rows)
    header = ["model", "kind", "long docs", "protocol", *columns]
    body = [[f"{name} (paper)", "paper", _DASH, _DASH, *(_cell_paper(values.get(c)) for c in columns)]
            for name, values in PAPER_TABLE_1.items()]
    for row in rows:
        summary = _summary(row)
        body.append([row.model, row.kind, row.long_documents, row.protocol,
                     *(_cell(*summary[c]) if c in summary else _DASH for c in columns)])
    lines = [
        "# Retrieval results",
        "",
        "nDCG@10 ×100. Paper rows: ModernBERT paper (arXiv 2412.13663), Table 1. BEIR is the mean of 15 sets "
        "with CQADupStack first averaged over its 12 forums; CSN is the mean of CodeSearchNet's 6 languages "
        "(CoIR); SQA is CoIR StackOverflow-QA. `(k/n)` marks a mean over k of the n sets, not comparable with "
        "the paper. *long docs*: how documents longer than max_length were handled (`truncate`, or "
        "`chunk-maxpool`: split into chunks, a document scores as its best chunk). *protocol*: hits on the "
        "query's own id dropped on every set (`beir`) or only where the MTEB task opts in (`mteb`); the "
        "paper's DPR rows come from MTEB, its ColBERT rows from PyLate (which never drops them).",
        "",
        *_table(header, body),
    ]
    datasets = _dataset_columns(rows)
    if datasets:
        lines += ["", "## Per dataset", "",
                  *_table(["dataset", *(f"{row.model} · {row.kind} · {row.long_documents} · {row.protocol}"
                                        for row in rows)],
                          ([name.replace("#id", " (MLDR-ID)"), *(_dataset_cell(row, name) for row in rows)]
                           for name in datasets))]
    return "\n".join(lines) + "\n"


def _cell_paper(value: float | None) -> str:
    return _DASH if value is None else f"{value:.1f}"


_Bar = tuple[float, str]   # (height ×100, note such as "2/15" for a partial mean)


def _chart_series(results: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[tuple[str, list[_Bar | None], bool]]]:
    """Categories (the paper columns any result fills) and bar series: yours, then the paper's."""
    rows = _rows(results)
    columns = _columns(rows)
    bars: list[dict[str, _Bar]] = []
    for row in rows:
        summary = _summary(row)
        bars.append({c: (100 * mean, "" if found == expected else f"{found}/{expected}")
                     for c, (mean, found, expected) in summary.items() if c in columns and mean is not None})
    used = [c for c in columns if any(c in b for b in bars)]
    series: list[tuple[str, list[_Bar | None], bool]] = [
        (f"{row.model} [{row.kind}, {row.long_documents}, {row.protocol}]", [b.get(c) for c in used], False)
        for row, b in zip(rows, bars)]
    for name in _CHART_REFERENCES:
        paper = PAPER_TABLE_1[name]
        series.append((f"{name} (paper)", [(paper[c], "") if c in paper else None for c in used], True))
    return used, series


def write_chart(results: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """A grouped bar chart (PNG) of the summary columns, beside ModernBERT-base/large from the paper.

    Partial means carry their coverage (``2/15``) above the bar.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    categories, series = _chart_series(results)
    path = Path(path)
    figure = Figure(figsize=(max(6.0, 1.7 * max(1, len(categories)) + 2), 5.0), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(series))
    for i, (label, values, reference) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        present = [(j, bar) for j, bar in enumerate(values) if bar is not None]
        drawn = axes.bar([j + offset for j, _ in present], [bar[0] for _, bar in present], width, label=label,
                         hatch="//" if reference else None, alpha=0.55 if reference else 0.95,
                         edgecolor="black", linewidth=0.4)
        for rect, (_, (_, note)) in zip(drawn, present):
            if note:
                axes.annotate(note, (rect.get_x() + rect.get_width() / 2, rect.get_height()), ha="center",
                              va="bottom", fontsize=6, xytext=(0, 2), textcoords="offset points")
    axes.set_xticks(range(max(1, len(categories))), categories or ["(no summary column)"])
    axes.set_ylabel("nDCG@10 ×100")
    axes.set_ylim(0, 100)
    axes.set_title("embedkit results vs. ModernBERT paper (arXiv 2412.13663, Table 1)", fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def write_report(paths: Iterable[str | Path], out_dir: str | Path) -> tuple[Path, Path]:
    """Read results under ``paths`` and write ``<out_dir>/report.md`` and ``<out_dir>/report.png``."""
    results = load_results(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png_path = write_chart(results, out / "report.png")
    md_path = out / "report.md"
    tmp = md_path.with_name(f".{md_path.name}.tmp")
    tmp.write_text(render_markdown(results) + f"\n![nDCG@10 chart]({png_path.name})\n", encoding="utf-8")
    os.replace(tmp, md_path)
    logger.info("wrote %s and %s from %d results", md_path, png_path, len(results))
    return md_path, png_path
