"""`embedkit eval --benchmark NAMES`: materialise each set, score it, save one JSON per dataset, average."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

from embedkit.errors import EmbedkitError
from embedkit.evaluate.runner import EvalOptions, evaluate

logger = logging.getLogger(__name__)


def model_label(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name or model)


def results_path(output_dir: str | Path, model: str, dataset: str) -> Path:
    return Path(output_dir) / model_label(model) / (dataset.replace("/", "__") + ".json")


def run_benchmarks(model: str, spec: str, options: EvalOptions, output_dir: str | Path = "results",
                   data: str | None = None, cache_dir: str | Path | None = None,
                   mldr_setting: str = "ood") -> str:
    """Score ``model`` on every benchmark in ``spec``; return a markdown table with the group means.

    ``data`` replaces the download for a single, non-aggregate benchmark (a local BEIR folder).
    Per-benchmark settings follow the paper: the scored split and the document length (8192 for MLDR)
    unless ``options.max_length`` is set. MLDR results record ``mldr_setting``: ``"id"`` when the model was
    fine-tuned on MLDR's training split (the paper's MLDR-ID column), else ``"ood"``.
    """
    from embedkit.data.benchmark_sources import materialize_all
    from embedkit.evaluate.benchmarks import group_averages, resolve_benchmarks

    if mldr_setting not in ("ood", "id"):
        raise EmbedkitError(f"mldr_setting must be 'ood' or 'id', got {mldr_setting!r}")
    entries = resolve_benchmarks(spec)
    if data and (len(entries) != 1 or entries[0].is_aggregate):
        raise EmbedkitError("--data with --benchmark names one local folder, so give exactly one non-aggregate "
                            "benchmark (e.g. --benchmark beir/scifact --data path/to/scifact)")
    scores: dict[str, float] = {}
    rows = []
    for entry in entries:
        sets = [(entry.name, Path(data))] if data else materialize_all(entry, cache_dir)
        for dataset, folder in sets:
            opts = replace(options, split=entry.split, max_length=options.max_length or entry.max_length)
            out = results_path(output_dir, model, dataset)
            labels = {"mldr_setting": mldr_setting} if entry.group == "mldr" else None
            result = evaluate(model, folder, opts, output=out, run_file=out.with_suffix(".trec"),
                              dataset_name=dataset, labels=labels)
            scores[dataset] = result["ndcg@10"]
            rows.append((dataset, result))
            logger.info("%s: nDCG@10 %.4f (%s)", dataset, result["ndcg@10"], out)
    lines = ["| dataset | nDCG@10 | Recall@100 | MRR@10 | queries | documents |", "|---|---|---|---|---|---|"]
    for dataset, r in rows:
        lines.append(f"| {dataset} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} | "
                     f"{r['num_queries']} | {r['num_documents']} |")
    for name, group in group_averages(scores).items():
        if group.found:
            note = "" if group.complete else f" ({len(group.found)}/{group.expected} sets)"
            lines.append(f"| **{name} mean**{note} | {group.mean:.4f} | | | | |")
    return "\n".join(lines)
