"""`embedkit eval --benchmark NAMES`: materialise each set, score it, save one JSON per dataset, average.

A long run (``paper`` is 34 result files) must survive the real data: each dataset is scored on its
own, its results JSON written as soon as it is scored; a dataset that fails is logged in one line
and the run goes on; the table marks it and :attr:`BenchmarkRun.failed` lets the CLI exit non-zero.
Rerunning the same command skips every dataset whose JSON already holds the same model
fingerprint and settings (``overwrite=True`` redoes them), so a run killed midway scores only the rest.
"""

from __future__ import annotations

import json
import logging
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from embedkit.artifacts import Policy, settings_key
from embedkit.config import IndexSettings, MldrSetting
from embedkit.errors import EmbedkitError
from embedkit.evaluate.metrics import depth_of
from embedkit.evaluate.runner import EvalOptions, evaluate
from embedkit.evaluate.settings import model_label, results_currency, results_path, run_settings
from embedkit.index.registry import NO_MODEL

logger = logging.getLogger(__name__)

__all__ = ["run_benchmarks", "results_table", "results_path", "model_label", "run_settings", "settings_key",
           "BenchmarkRun", "DatasetOutcome"]


@dataclass
class DatasetOutcome:
    """What happened to one dataset: scored now, skipped (already scored alike), or failed."""

    dataset: str
    status: Literal["scored", "skipped", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class BenchmarkRun:
    """Every dataset's outcome, in order, and the markdown table of them."""

    outcomes: list[DatasetOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[DatasetOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def table(self) -> str:
        return results_table(self.outcomes)


def _already_scored(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The saved result at ``path`` when it was made with ``settings``, else None (a result made otherwise is
    scored again, the differences logged)."""
    if results_currency(path, settings).must_make(Policy.REBUILD, then="scoring again"):
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def headline(result: dict[str, Any]) -> str:
    """``nDCG@10 0.4321`` (``nDCG@5`` when only 5 documents were retrieved)."""
    key = next((k for k in result if k.startswith("ndcg@")), "ndcg@10")
    value = result.get(key)
    return f"nDCG@{key[5:]} {value:.4f}" if isinstance(value, (int, float)) else "no nDCG"


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(exc, EmbedkitError) else f"{type(exc).__name__}: {first}"


class _Progress:
    """``[n/N] dataset: ... (elapsed; ETA)`` lines; the ETA averages the datasets scored so far."""

    def __init__(self, total: int):
        self.total, self.done, self.scored, self.seconds = total, 0, 0, 0.0

    def line(self, dataset: str, message: str, seconds: float | None = None) -> str:
        self.done += 1
        if seconds is not None:
            self.scored += 1
            self.seconds += seconds
        remaining = self.total - self.done
        eta = f"ETA {_duration(remaining * self.seconds / self.scored)}" if self.scored and remaining else ""
        took = f"{_duration(seconds)}" if seconds is not None else ""
        timing = "; ".join(t for t in (took, eta) if t)
        return f"[{self.done}/{self.total}] {dataset}: {message}" + (f" ({timing})" if timing else "")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def run_benchmarks(model: str, spec: str, options: EvalOptions, output_dir: str | Path = "results",
                   data: str | None = None, cache_dir: str | Path | None = None,
                   mldr_setting: str = "ood", overwrite: bool = False, index: IndexSettings | None = None
                   ) -> BenchmarkRun:
    """Score ``model`` on every benchmark in ``spec``, one isolated dataset at a time.

    ``data`` replaces the download for a single, non-aggregate benchmark (a local BEIR folder).
    Per-benchmark settings follow the paper: the scored split and the document length (8192 for MLDR)
    unless ``options.max_length`` is set. MLDR results record ``mldr_setting``: ``"id"`` when the model was
    fine-tuned on MLDR's training split (the paper's MLDR-ID column), else ``"ood"``. A dataset whose
    JSON under ``output_dir`` already holds the same settings is skipped unless ``overwrite``. ``index``
    chooses the backend (default ``auto``), as for ``evaluate``.
    """
    from embedkit.data.benchmarks import document_text_for, resolve_benchmarks

    if mldr_setting not in typing.get_args(MldrSetting):
        raise EmbedkitError(f"mldr_setting must be 'ood' or 'id', got {mldr_setting!r}")
    entries = resolve_benchmarks(spec)
    if data and (len(entries) != 1 or entries[0].is_aggregate):
        raise EmbedkitError("--data with --benchmark names one local folder, so give exactly one non-aggregate "
                            "benchmark (e.g. --benchmark beir/scifact --data path/to/scifact)")
    if model != NO_MODEL:
        from embedkit.models.loading import resolve_model

        model = resolve_model(model)  # a missing model is the user's error, not 34 failed datasets
    progress = _Progress(sum(len(entry.members) or 1 for entry in entries))
    run = BenchmarkRun()
    for entry, dataset, folder in _datasets(entries, data, cache_dir, run, progress):
        opts = replace(options, split=entry.split, max_length=options.max_length or entry.max_length)
        labels = {"mldr_setting": mldr_setting} if entry.group == "mldr" else {}
        document_text = document_text_for(opts.protocol, entry)
        settings = run_settings(model, opts, labels, index, document_text)
        out = results_path(output_dir, model, dataset)
        saved = None if overwrite else _already_scored(out, settings)
        if saved is not None:
            run.outcomes.append(DatasetOutcome(dataset, "skipped", saved))
            logger.info(progress.line(dataset, f"already scored, {headline(saved)} (kept {out})"))
            continue
        start = time.perf_counter()
        try:
            result = evaluate(model, folder, opts, output=out, run_file=out.with_suffix(".trec"),
                              dataset_name=dataset, labels=labels, index=index, document_text=document_text)
        except Exception as exc:  # noqa: BLE001 - one dataset's failure must not end the run
            _fail(run, progress, dataset, exc)
            continue
        run.outcomes.append(DatasetOutcome(dataset, "scored", result))
        logger.info(progress.line(dataset, f"{headline(result)} -> {out}", time.perf_counter() - start))
    failed = run.failed
    if failed:
        logger.error("%d of %d datasets failed: %s", len(failed), progress.total, ", ".join(o.dataset for o in failed))
    return run


def _fail(run: BenchmarkRun, progress: _Progress, dataset: str, exc: BaseException) -> None:
    message = _error_line(exc)
    run.outcomes.append(DatasetOutcome(dataset, "failed", error=message))
    logger.error(progress.line(dataset, f"FAILED: {message}"))
    logger.debug("%s failed", dataset, exc_info=exc)


def _datasets(entries: list[Any], data: str | None, cache_dir: str | Path | None, run: BenchmarkRun,
              progress: _Progress) -> Iterator[tuple[Any, str, Path]]:
    """``(entry, dataset name, BEIR folder)`` per set; a set whose download failed is reported here."""
    from embedkit.data.benchmark_sources import materialize_all
    from embedkit.data.benchmarks import BENCHMARKS

    for entry in entries:
        if data:
            yield entry, entry.name, Path(data)
            continue
        try:
            sets = materialize_all(entry, cache_dir)
        except Exception as exc:  # noqa: BLE001 - e.g. one source offline; the others go on
            for member in entry.members or (entry.name,):
                _fail(run, progress, member, exc)
            continue
        for dataset, folder in sets:
            yield BENCHMARKS.get(dataset, entry), dataset, folder


def results_table(outcomes: list[DatasetOutcome]) -> str:
    """Markdown: one row per dataset (failures marked), then the paper's group means. Recall is shown at the
    depth the results were retrieved to (``Recall@k``, k in each row when they differ)."""
    from embedkit.data.benchmarks import group_averages

    depths = {depth_of(o.result) for o in outcomes if o.result is not None}
    one_depth = next(iter(depths)) if len(depths) == 1 else None
    recall = f"Recall@{one_depth}" if one_depth else "Recall@k"
    lines = [f"| dataset | nDCG@10 | {recall} | MRR@10 | queries | documents | judged missing |",
             "|---|---|---|---|---|---|---|"]
    scores: dict[str, float] = {}
    for o in outcomes:
        if o.result is None:
            lines.append(f"| {o.dataset} | **FAILED** | {(o.error or '')[:300].replace('|', '/')} | | | | |")
            continue
        r = o.result
        k = depth_of(r)
        scores[o.dataset] = r.get("ndcg@10")
        note = " (kept)" if o.status == "skipped" else ""
        recall_cell = _cell(r.get(f"recall@{k}")) + ("" if one_depth else f" (k={k})")
        lines.append(f"| {o.dataset}{note} | {_cell(r.get('ndcg@10'))} | {recall_cell} | {_cell(r.get('mrr@10'))} | "
                     f"{r['num_queries']} | {r['num_documents']} | {r.get('judged_missing', 0)} |")
    for name, group in group_averages({d: v for d, v in scores.items() if v is not None}).items():
        if group.found:
            note = "" if group.complete else f" ({len(group.found)}/{group.expected} sets)"
            lines.append(f"| **{name} mean**{note} | {group.mean:.4f} | | | | | |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "—"
