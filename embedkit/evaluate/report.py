"""``embedkit report``: results JSON files → a markdown report and a PNG chart, for any data.

Reads what ``embedkit eval`` and ``embedkit run`` write (one JSON per model × dataset, with at least
``dataset`` and an ``ndcg@N`` score). Every report shows each dataset's scores, model by model, in the
metric asked for (nDCG@10 by default, recall at the depth each result was retrieved to, or MRR@10): a
user's own folders get their bars like any benchmark. When results cover sets of the ModernBERT paper, a
second table and panel put their means beside the paper's Table 1 (nDCG@10 only, the paper's metric).

Models are named by :func:`embedkit.evaluate.settings.model_name` (the run's folder name, never an absolute
path); a name that two models share is told apart by its parent folder. Rows are (model, kind,
long-document mode, protocol): ``long_documents`` says whether documents longer than ``max_length`` were
truncated or split into chunks scored by their best chunk (``chunk-maxpool``); the self-hit ``protocol`` a
result was scored under (``beir`` or ``mteb``) is part of its row, so the two are never averaged together.

MLDR scores go to the MLDR-OOD column unless the result carries ``"mldr_setting": "id"`` (a model
fine-tuned on MLDR's training split, the paper's MLDR-ID setting). BM25 results get their own
columns (``BM25 BEIR``, ``BM25 MLDR-OOD``), never the DPR ones. A mean over only some of the sets a paper
column averages is marked ``(k of n sets)`` in the table and hatched in the chart: it is not comparable
with the paper's number.
"""

from __future__ import annotations

import json
import logging
import math
import os
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedkit.config import MldrSetting
from embedkit.data.benchmarks import BENCHMARKS, CQADUPSTACK_FORUMS, group_averages
from embedkit.errors import EmbedkitError
from embedkit.evaluate.metrics import depth_of
from embedkit.index.registry import kind_of_label

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("ndcg@10", "recall@k", "mrr@10")
PAPER_METRIC = "ndcg@10"
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
_REFERENCE_COLOURS = ("#8c8c8c", "#4d4d4d")
_DASH = "—"


# --------------------------------------------------------------------------- reading

def load_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every results JSON under ``paths`` (folders are searched recursively; files are read as given).

    JSON files that are not results (no ``dataset`` key, e.g. manifests) are skipped. A result
    without ``model`` gets the name of the folder it was found under, so ``report runs/a runs/b``
    compares two models. Each dict gains ``_file`` (where it came from) and ``_name`` (what the model is
    called). When the same (model, kind, dataset, split, long-document mode, retrieval method) appears twice,
    the later file wins, with a warning.
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
            raise EmbedkitError(f"results path not found: {root} (no such local path)")
        for path in files:
            result = _read_result(path, default_model)
            if result is None:
                continue
            key = (result["model"], result.get("kind"), result["dataset"], result.get("split"),
                   result.get("long_documents"), result.get("mldr_setting"), _protocol(result), result.get("method"))
            if key in found:
                logger.warning("%s repeats %s (%s on %s); using the later file", path, found[key]["_file"],
                               result["_name"], result["dataset"])
            found[key] = result
    if not found:
        raise EmbedkitError(f"no results JSON (objects with 'dataset' and an nDCG score) under {', '.join(searched)}")
    results = list(found.values())
    _disambiguate(results)
    return results


def _read_result(path: Path, default_model: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmbedkitError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or "dataset" not in obj:
        logger.debug("skipping %s: not a results file", path)
        return None
    scores = [key for key in obj if key.startswith(("ndcg@", "recall@", "mrr@", "map@"))]
    if not any(key.startswith("ndcg@") for key in scores):
        raise EmbedkitError(f"{path}: no nDCG score (key 'ndcg@10', or 'ndcg@k' for k below 10)")
    for key in scores:
        value = obj[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise EmbedkitError(f"{path}: key {key!r} must be a number (got {value!r})")
    if obj.get("mldr_setting", "ood") not in typing.get_args(MldrSetting):
        raise EmbedkitError(f"{path}: key 'mldr_setting' must be 'ood' or 'id' (got {obj['mldr_setting']!r})")
    model = str(obj.get("model") or default_model)
    return {**obj, "model": model, "dataset": str(obj["dataset"]), "_file": str(path),
            "_name": str(obj.get("model_name") or _name_of(model))}


def _name_of(model: str) -> str:
    from embedkit.evaluate.settings import model_name

    return model_name(model)


def _disambiguate(results: list[dict[str, Any]]) -> None:
    """Two models that share a name (``exp1/minilm``, ``exp2/minilm``) are named with their parent folder."""
    models_of: dict[str, set[str]] = {}
    for r in results:
        models_of.setdefault(r["_name"], set()).add(r["model"])
    for r in results:
        if len(models_of[r["_name"]]) > 1:
            parent = Path(r["model"]).parent.name
            r["_name"] = f"{parent}/{r['_name']}" if parent else r["model"]


def _protocol(result: Mapping[str, Any]) -> str:
    """Results written before the protocol was recorded dropped self-hits on every set: BEIR's."""
    return str(result.get("protocol") or "beir")


def metric_value(result: Mapping[str, Any], metric: str) -> float | None:
    """``result``'s score in ``metric`` (``recall@k``: recall at the depth it was retrieved to), in [0, 1]."""
    key = f"recall@{depth_of(result)}" if metric == "recall@k" else metric
    value = result.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def metric_title(metric: str, results: Sequence[Mapping[str, Any]] = ()) -> str:
    """``nDCG@10``, ``MRR@10``, ``Recall@100`` (``Recall@k`` when the results were retrieved to several depths)."""
    if metric == "recall@k":
        depths = {depth_of(r) for r in results}
        return f"Recall@{depths.pop()}" if len(depths) == 1 and None not in depths else "Recall@k"
    return {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10"}.get(metric, metric)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise EmbedkitError(f"--metric: {metric!r} is not one of {', '.join(METRICS)}")


# --------------------------------------------------------------------------- rows

UNKNOWN_KIND_FAMILY = "DPR"  # results that name no kind embedkit knows: single-vector, as the paper's DPR rows


@dataclass
class _Row:
    model: str
    kind: str
    long_documents: str
    protocol: str
    method: str = ""  # how it retrieved: the index alone (its kind) or composed, e.g. rrf(sparse,dense)
    name: str = ""
    scores: dict[str, float] = field(default_factory=dict)   # dataset (or "mldr#id") → score in [0, 1]
    depths: dict[str, int | None] = field(default_factory=dict)  # dataset → k it was retrieved to
    lengths: dict[str, int | None] = field(default_factory=dict)  # dataset → tokens documents were read up to
    label: str = ""

    @property
    def family(self) -> str:
        entry = kind_of_label(self.kind)
        return entry.family if entry is not None else UNKNOWN_KIND_FAMILY

    @property
    def has_model(self) -> bool:
        entry = kind_of_label(self.kind)
        return entry is None or entry.needs_model


def _rows(results: Sequence[Mapping[str, Any]], metric: str = PAPER_METRIC) -> list[_Row]:
    rows: dict[tuple[str, str, str, str], _Row] = {}
    for r in results:
        key = (str(r["model"]), str(r.get("kind") or "?"), str(r.get("long_documents") or "truncate"),
               _protocol(r), str(r.get("method") or ""))
        row = rows.setdefault(key, _Row(*key, name=str(r.get("_name") or r["model"])))
        value = metric_value(r, metric)
        if value is None:
            continue
        dataset = str(r["dataset"]) + ("#id" if r.get("mldr_setting") == "id" else "")
        row.scores[dataset] = value
        row.depths[dataset] = depth_of(r)
        row.lengths[dataset] = r.get("max_length")
    ordered = sorted(rows.values(), key=lambda row: (row.name, row.kind, row.long_documents != "truncate",
                                                     row.long_documents, row.protocol, row.method))
    _label(ordered)
    return ordered


def _label(rows: list[_Row]) -> None:
    """A row is its model's name, with the kind, long-document mode, protocol or retrieval method (a sparse model
    alone and fused, ``rrf(sparse,dense)``) added only where rows of the same name differ in it."""
    by_name: dict[str, list[_Row]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row)
    for same in by_name.values():
        varying = [attr for attr in ("kind", "long_documents", "protocol", "method")
                   if len({getattr(r, attr) for r in same}) > 1]
        for row in same:
            extra = ", ".join(str(getattr(row, attr)) for attr in varying if getattr(row, attr))
            row.label = f"{row.name} ({extra})" if extra else row.name


def _cell(value: float | None, found: int = 1, expected: int = 1) -> str:
    if value is None:
        return _DASH
    text = f"{100 * value:.1f}"
    return text if found == expected else f"{text} ({found} of {expected} sets)"


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


def _paper_rows(rows: Sequence[_Row]) -> list[_Row]:
    """The rows that hold any paper benchmark (a user's own folders have no paper number to sit beside)."""
    return [row for row in rows if any(v is not None for v, *_ in _summary(row).values())]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_escape(c) for c in cells) + " |" for cells in body]
    return lines


def _dataset_columns(rows: Sequence[_Row]) -> list[str]:
    """Datasets seen, in registry order (CQADupStack forums folded into one), then a user's own, by name."""
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


def _dataset_value(row: _Row, name: str) -> tuple[float | None, int, int]:
    if name == "beir/cqadupstack":
        cqa = group_averages(row.scores)["beir/cqadupstack"]
        return cqa.mean, len(cqa.found), cqa.expected
    return row.scores.get(name), 1, 1


def _dataset_title(name: str) -> str:
    return name.replace("#id", " (MLDR-ID)")


# --------------------------------------------------------------------------- markdown

def _length_note(rows: Sequence[_Row]) -> str:
    """What the models' rows read of each document (the effective max length their results record): one
    length for all, or, where the rows of a dataset were scored at different lengths, which at which."""
    by_dataset: dict[str, dict[str, int | None]] = {}
    for row in rows:
        if row.has_model:  # bm25 reads whole documents
            for dataset, length in row.lengths.items():
                by_dataset.setdefault(dataset, {})[row.label] = length
    differ = {d: found for d, found in by_dataset.items() if len(set(found.values())) > 1}
    if not differ:
        lengths = {length for found in by_dataset.values() for length in found.values()}
        return f" The models read documents up to {lengths.pop()} tokens." if lengths and None not in lengths \
            and len(lengths) == 1 else ""
    parts = "; ".join(_dataset_title(d) + ": " + ", ".join(f"{label} {length or 'unrecorded'}"
                                                            for label, length in found.items())
                      for d, found in sorted(differ.items()))
    return (f" **Not like for like**: the models read documents up to different lengths (tokens) on {parts}; "
            "part of a difference in score can be the length.")


def render_markdown(results: Sequence[Mapping[str, Any]], metric: str = PAPER_METRIC) -> str:
    """Markdown: every dataset's score in ``metric`` (×100, one decimal), one column per model; then, for
    nDCG@10 and results on the paper's sets, the summary rows beside the paper's Table 1. ``(k of n sets)``
    marks a mean over only k of the n sets it should cover (not comparable with the paper's number)."""
    _check_metric(metric)
    rows = _rows(results, metric)
    title = metric_title(metric, results)
    depths = {d for row in rows for d in row.depths.values()}
    lines = [REPORT_TITLE, "",
             f"{title} ×100 per dataset, one column per model." + (
                 " Recall is measured at the depth each result was retrieved to (its `k`)."
                 if metric == "recall@k" and len(depths) > 1 else "")]
    if len({row.protocol for row in rows}) > 1 or len({row.long_documents for row in rows if row.has_model}) > 1:
        lines[-1] += (" *long docs*: documents longer than max_length were truncated (`truncate`) or split into "
                      "chunks scored by their best chunk (`chunk-maxpool`). *protocol*: hits on the query's own id "
                      "dropped on every set (`beir`) or only where the MTEB task opts in (`mteb`).")
    lines[-1] += _length_note(rows)
    datasets = _dataset_columns(rows)
    lines += ["", *_table(["dataset", *(row.label for row in rows)],
                          ([_dataset_title(name), *(_cell(*_dataset_value(row, name)) for row in rows)]
                           for name in datasets))]
    paper = _paper_rows(rows) if metric == PAPER_METRIC else []
    if paper:
        columns = _columns(paper)
        header = ["model", "kind", "long docs", "protocol", *columns]
        body = [[f"{name} (paper)", "paper", _DASH, _DASH, *(_cell_paper(values.get(c)) for c in columns)]
                for name, values in PAPER_TABLE_1.items()]
        for row in paper:
            summary = _summary(row)
            body.append([row.label, row.kind, row.long_documents, row.protocol,
                         *(_cell(*summary[c]) if c in summary else _DASH for c in columns)])
        lines += [
            "", "## Next to the ModernBERT paper", "",
            "nDCG@10 ×100. Paper rows: ModernBERT paper (arXiv 2412.13663), Table 1. BEIR is the mean of 15 sets "
            "with CQADupStack first averaged over its 12 forums; CSN is the mean of CodeSearchNet's 6 languages "
            "(CoIR); SQA is CoIR StackOverflow-QA. `(k of n sets)` marks a mean over only k of the n sets: it is "
            "not comparable with the paper's number. *long docs*: how documents longer than max_length were "
            "handled (`truncate`, or `chunk-maxpool`: split into chunks, a document scores as its best chunk). "
            "*protocol*: hits on the query's own id dropped on every set (`beir`) or only where the MTEB task opts "
            "in (`mteb`); the paper's DPR rows come from MTEB, its ColBERT rows from PyLate (which never drops "
            "them).",
            "", *_table(header, body)]
    elif metric != PAPER_METRIC and any(_paper_rows(_rows(results, PAPER_METRIC))):
        lines += ["", "The comparison with the ModernBERT paper is in nDCG@10 only (`--metric ndcg@10`)."]
    return "\n".join(lines) + "\n"


def _cell_paper(value: float | None) -> str:
    return _DASH if value is None else f"{value:.1f}"


# --------------------------------------------------------------------------- chart

def write_chart(results: Sequence[Mapping[str, Any]], path: str | Path, metric: str = PAPER_METRIC) -> Path:
    """A PNG of :func:`chart_figure`, written through a temporary file."""
    figure = chart_figure(results, metric)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    figure.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def chart_figure(results: Sequence[Mapping[str, Any]], metric: str = PAPER_METRIC) -> Any:
    """Grouped bars: each dataset's score, one colour per model (the legend names them); beside (or below)
    it, for nDCG@10 results on the paper's sets, the paper-column means next to ModernBERT-base/large from
    the paper (grey). A mean over only some of a column's sets is hatched and labelled ``k of n sets``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    _check_metric(metric)
    rows = _rows(results, metric)
    datasets = _dataset_columns(rows)
    paper = _paper_rows(rows) if metric == PAPER_METRIC else []
    columns = [c for c in _columns(paper) if any(_summary(r).get(c, (None,))[0] is not None for r in paper)]
    colours = _colours([row.label for row in rows])
    title = metric_title(metric, results)

    width_a = 1.2 + 0.28 * max(1, len(rows)) * max(1, len(datasets))
    width_b = 1.2 + 0.28 * (len(paper) + len(_CHART_REFERENCES)) * len(columns) if columns else 0.0
    stacked = bool(columns) and width_a + width_b > 16  # many datasets: the paper panel goes below
    if stacked:
        figure = Figure(figsize=(min(24.0, max(8.0, width_a, width_b)), 10.0), dpi=120)
        grid = figure.add_gridspec(2, 1, height_ratios=[1, 1])
    else:
        figure = Figure(figsize=(min(24.0, max(7.0, width_a + width_b + 1.5)), 5.6), dpi=120)
        grid = figure.add_gridspec(1, 2 if columns else 1, width_ratios=[width_a, width_b] if columns else [1.0])
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(grid[0, 0])
    series = [(row.label, [_dataset_value(row, d) for d in datasets], colours[i], False)
              for i, row in enumerate(rows)]
    _bars(axes, [_dataset_title(d) for d in datasets], series)
    axes.set_title(f"{title} by dataset", fontsize=10)
    axes.set_ylabel(f"{title} ×100")
    handles = [Patch(facecolor=colours[i], edgecolor="black", linewidth=0.4, label=row.label)
               for i, row in enumerate(rows)]
    if columns:
        right = figure.add_subplot(grid[1, 0] if stacked else grid[0, 1], sharey=axes)
        series = [(row.label, [_summary(row).get(c, (None, 1, 1)) for c in columns], colours[rows.index(row)], False)
                  for row in paper]
        series += [(f"{name} (paper)", [(PAPER_TABLE_1[name][c] / 100, 1, 1) if c in PAPER_TABLE_1[name]
                                         else (None, 1, 1) for c in columns], colour, True)
                   for name, colour in zip(_CHART_REFERENCES, _REFERENCE_COLOURS)]
        partial = _bars(right, columns, series)
        right.set_title("Next to the ModernBERT paper (arXiv 2412.13663, Table 1)", fontsize=10)
        handles += [Patch(facecolor=colour, edgecolor="black", linewidth=0.4, label=f"{name} (paper)")
                    for name, colour in zip(_CHART_REFERENCES, _REFERENCE_COLOURS)]
        if partial:
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", linewidth=0.4,
                                 label="hatched: mean of only some sets (not comparable with the paper)"))
    columns_of_legend = min(3, len(handles))
    figure.legend(handles=handles, loc="lower center", ncol=columns_of_legend, fontsize=8, frameon=False)
    rows_of_legend = -(-len(handles) // columns_of_legend)
    figure.tight_layout(rect=(0, 0.04 + 0.045 * rows_of_legend * (0.56 if stacked else 1.0), 1, 1))
    return figure


def _colours(labels: Sequence[str]) -> list[Any]:
    """One colour per row, chosen by its label (a stable hash into tab20), so that a model keeps its colour
    whichever other models a report holds; a label whose colour another row took takes the next free one.

    >>> _colours(["bm25", "minilm"])[0] == _colours(["a", "bm25", "z"])[1]
    True
    """
    import hashlib

    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    taken: set[int] = set()
    chosen = []
    for label in labels:
        slot = int(hashlib.sha256(label.encode()).hexdigest(), 16) % cmap.N
        while slot in taken and len(taken) < cmap.N:
            slot = (slot + 1) % cmap.N
        taken.add(slot)
        chosen.append(cmap(slot))
    return chosen


def _bars(axes: Any, categories: list[str], series: list[tuple[str, list[tuple[float | None, int, int]], Any, bool]]
          ) -> bool:
    """Grouped bars, each category's bars side by side and centred, their values on top; a partial mean
    (found < expected) is hatched and says ``k of n sets``. Returns whether any bar was partial."""
    most = max((sum(values[j][0] is not None for _, values, _, _ in series) for j in range(len(categories))),
               default=1)
    width = 0.8 / max(1, most)
    partial = False
    for j in range(len(categories)):
        present = [(values[j], colour, reference) for _, values, colour, reference in series
                   if values[j][0] is not None]
        for i, ((value, found, expected), colour, reference) in enumerate(present):
            offset = (i - (len(present) - 1) / 2) * width
            whole = found == expected
            partial |= not whole
            bar = axes.bar(j + offset, 100 * value, width, color=colour if whole else "white",
                           edgecolor="black" if whole else colour, hatch=None if whole else "///",
                           linewidth=0.4 if whole else 1.2)[0]
            note = f"{100 * value:.1f}" + ("" if whole else f"\n{found} of {expected} sets")
            axes.annotate(note, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                          fontsize=6, xytext=(0, 2), textcoords="offset points")
    slanted = len(categories) > 4 or any(len(c) > 12 for c in categories)
    axes.set_xticks(range(len(categories)), categories, rotation=25 if slanted else 0,
                    ha="right" if slanted else "center", fontsize=8)
    axes.set_xlim(-0.6, len(categories) - 0.4)
    axes.set_ylim(0, 105)
    axes.grid(axis="y", alpha=0.3)
    return partial


# --------------------------------------------------------------------------- both

REPORT_TITLE = "# Retrieval results"  # the first line of every report.md embedkit writes


def _check_replaceable(out: Path) -> None:
    """report.md and report.png are replaced only where they are a report embedkit wrote (report.md opens with
    REPORT_TITLE), never a user's files of those names."""
    md = out / "report.md"
    try:
        ours = md.is_file() and md.open(encoding="utf-8", errors="replace").readline().rstrip("\n") == REPORT_TITLE
    except OSError:
        ours = False
    for path in (md, out / "report.png"):
        if path.exists() and not ours:
            raise EmbedkitError(f"{path} exists and is not part of a report embedkit wrote; choose another output "
                                "folder (embedkit never overwrites what it did not make)")


def write_report(paths: Iterable[str | Path], out_dir: str | Path, metric: str = PAPER_METRIC) -> tuple[Path, Path]:
    """Read results under ``paths`` and write ``<out_dir>/report.md`` and ``<out_dir>/report.png``."""
    _check_metric(metric)
    results = load_results(paths)
    out = Path(out_dir)
    _check_replaceable(out)
    out.mkdir(parents=True, exist_ok=True)
    png_path = write_chart(results, out / "report.png", metric)
    md_path = out / "report.md"
    tmp = md_path.with_name(f".{md_path.name}.tmp")
    tmp.write_text(render_markdown(results, metric) + f"\n![{metric_title(metric, results)} chart]({png_path.name})\n",
                   encoding="utf-8")
    os.replace(tmp, md_path)
    logger.debug("wrote %s and %s from %d results", md_path, png_path, len(results))
    return md_path, png_path
