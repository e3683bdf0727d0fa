"""embedkit results as MTEB's result files (``embedkit eval --mteb-results DIR``), for the benchmarks MTEB has.

Each result of a named benchmark with an MTEB task (:attr:`embedkit.data.benchmarks.Benchmark.mteb_task`) becomes
that task's ``TaskResult``, built and written by mteb itself (``TaskResult.from_task_results`` and
``ResultCache.save_to_cache``), so the folder has MTEB's own layout, ``DIR/results/<model>/<revision>/<Task>.json``,
and loads with ``mteb.ResultCache(DIR).load_results(...)``. The sets of one task (CodeSearchNet's languages) are
its subsets in one file. The revision is the model's content fingerprint (a local model has no hub commit).

What a file holds is embedkit's score under the protocol it was run with: MTEB's own runs drop self-hits only where
the task opts in, which is ``--protocol mteb``; a result of the default ``beir`` protocol is written too, with a
warning, since on sets with self-hits (ArguAna, Quora...) it is not the number MTEB would give.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

_METRIC = re.compile(r"^(ndcg|recall|map|mrr)@(\d+)$")


def mteb_scores(result: dict[str, Any]) -> dict[str, float]:
    """The scores of an embedkit result under MTEB's names (``ndcg@10`` → ``ndcg_at_10``), ``main_score`` its
    nDCG@10 (the main score of every retrieval task embedkit maps to).

    >>> mteb_scores({"ndcg@10": 0.5, "recall@100": 0.9, "k": 100, "model": "m"})
    {'ndcg_at_10': 0.5, 'recall_at_100': 0.9, 'main_score': 0.5}
    """
    scores = {}
    for key, value in result.items():
        found = _METRIC.match(key)
        if found and isinstance(value, (int, float)):
            scores[f"{found.group(1)}_at_{found.group(2)}"] = float(value)
    scores["main_score"] = scores["ndcg_at_10"]
    return scores


def check_mteb() -> None:
    """Fail before any work when mteb, which writes the files, is not installed."""
    from importlib.util import find_spec

    if find_spec("mteb") is None:
        raise EmbedkitError("--mteb-results needs the mteb package: pip install 'embedkit[eval]'")


def write_mteb_results(results: list[dict[str, Any]], folder: str | Path) -> list[Path]:
    """Write MTEB's result files for the ``results`` (results JSON dicts of one or more models) that belong to a
    benchmark MTEB has; the others are named in one log line. Returns the files written."""
    check_mteb()
    import mteb
    from mteb.cache import ResultCache
    from mteb.results import TaskResult

    from embedkit.data.benchmarks import BENCHMARKS

    grouped: dict[tuple[str, str, str], dict[str, dict[str, dict[str, float]]]] = defaultdict(dict)
    seconds: dict[tuple[str, str, str], float] = defaultdict(float)
    skipped = []
    for result in results:
        entry = BENCHMARKS.get(str(result.get("dataset")))
        if entry is None or entry.mteb_task is None:
            skipped.append(str(result.get("dataset")))
            continue
        if result.get("protocol") != "mteb":
            logger.warning("%s was scored under the %s protocol: MTEB drops self-hits only where its task opts in "
                           "(--protocol mteb gives MTEB's number)", entry.name, result.get("protocol"))
        key = (entry.mteb_task, str(result["model_name"]), str(result["settings"]["model_fingerprint"])[:16])
        grouped[key].setdefault(str(result["split"]), {})[entry.mteb_subset] = mteb_scores(result)
        seconds[key] += sum(result.get("seconds", {}).values())
    if skipped:
        logger.info("no MTEB task for %s: no MTEB result file written for %s", ", ".join(skipped),
                    "it" if len(skipped) == 1 else "them")
    cache = ResultCache(Path(folder))
    written = []
    for (task_name, model, revision), scores in grouped.items():
        task = mteb.get_task(task_name)
        task_result = TaskResult.from_task_results(task, scores, evaluation_time=round(seconds[task_name, model,
                                                                                                revision], 3))
        name = model.replace("/", "__")
        cache.save_to_cache(task_result, name, revision)
        written.append(cache.get_task_result_path(task_name, name, revision))
    return written
