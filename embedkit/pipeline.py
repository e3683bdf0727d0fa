"""`embedkit run recipe.yaml`: train → index → eval → report, each stage skipped when its artefact exists
with the same settings, each resumable after a kill (the stages write to ``.partial`` folders and shards).

Stages read the previous stage's files only: the model folder (or ``model.name`` when the recipe has no
training data), the index folder, the results JSONs. Changing a recipe section reruns its stage and the
stages after it that depend on what changed (their settings include the model's fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from embedkit.artifacts import model_fingerprint, read_json, write_json
from embedkit.config import EvalConfig, EvalOptions, IndexConfig, IndexSettings, Recipe, ReportConfig, narrow
from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

STAGES = ("train", "index", "eval", "report")
RUN_MANIFEST = "embedkit-run.json"


@dataclass
class StageResult:
    stage: str
    status: str                 # ran | skipped (done) | off (not configured)
    seconds: float = 0.0
    artefact: str = ""


@dataclass
class RunResult:
    stages: list[StageResult] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # one per (model, dataset) scored
    model: str = ""

    def table(self) -> str:
        lines = ["| stage | status | seconds | artefact |", "|---|---|---|---|"]
        lines += [f"| {s.stage} | {s.status} | {s.seconds:.0f} | {s.artefact} |" for s in self.stages]
        if self.results:
            lines += ["", "| model | dataset | backend | nDCG@10 | Recall@100 | MRR@10 |", "|---|---|---|---|---|---|"]
            lines += [f"| {r['model']} | {r['dataset']} | {r.get('backend', '')} | {r['ndcg@10']:.4f} | "
                      f"{r['recall@100']:.4f} | {r['mrr@10']:.4f} |" for r in self.results]
        return "\n".join(lines)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def training_recipe(recipe: Recipe) -> Recipe:
    """The recipe the train stage runs: the sections training reads (evaluation after training is the eval
    stage's job, so editing ``index:``, ``eval:`` or ``report:`` never retrains)."""
    keep = EvalConfig(during_training=recipe.eval.during_training, split=recipe.eval.split,
                      batch_size=recipe.eval.batch_size)
    return replace(recipe, index=IndexConfig(), eval=keep, report=ReportConfig())


# --------------------------------------------------------------------------- stages

def _train(recipe: Recipe, overwrite: bool) -> tuple[str, str]:
    """The model later stages use, and the stage status."""
    if not recipe.data.train:
        return recipe.model.name, "off"
    from embedkit.train.run import MANIFEST, train

    wanted = training_recipe(recipe)
    folder = Path(recipe.output_dir)
    if not overwrite and (folder / MANIFEST).is_file() and read_json(folder / MANIFEST).get("recipe") == wanted.to_dict():
        return str(folder), "skipped (done)"
    if folder.exists():
        logger.warning("%s was trained with other settings: training again", folder)
    return str(train(wanted, overwrite=True)), "ran"


def _index_done(folder: Path, model: str, corpus_source: str, settings: IndexConfig) -> bool:
    from embedkit.index.base import MANIFEST, IndexManifest

    if not (folder / MANIFEST).is_file():
        return False
    try:
        manifest = IndexManifest.load(folder)
    except EmbedkitError:
        return False  # an older format: rebuild
    return (manifest.model_fingerprint == model_fingerprint(model) and manifest.corpus == corpus_source
            and manifest.settings.get("stage_key") == _key(asdict(settings)))


def _index(recipe: Recipe, model: str, overwrite: bool) -> tuple[str, str]:
    cfg = recipe.index
    if not cfg.corpus:
        return "", "off"
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index
    from embedkit.index.base import IndexManifest

    corpus = Corpus(cfg.corpus, subset=cfg.subset, split=cfg.split)
    folder = Path(cfg.output_dir)
    if not overwrite and _index_done(folder, model, corpus.source, cfg):
        return str(folder), "skipped (done)"
    build_index(model, corpus, folder, cfg, kind=recipe.kind, unpadded=recipe.model.unpadded, overwrite=True,
                colbert_library=recipe.colbert.library)
    manifest = IndexManifest.load(folder)  # record what the stage was asked for, to skip it next time
    manifest.settings["stage_key"] = _key(asdict(cfg))
    manifest.save(folder)
    return str(folder), "ran"


def _same_corpus(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _index_fits(recipe: Recipe, index_dir: str, folder: str) -> bool:
    """Whether the index stage's index is the one evaluating ``folder`` would build: same corpus, same
    document encoding, whole documents."""
    ix, ev = recipe.index, recipe.eval
    return bool(index_dir and ix.corpus and _same_corpus(ix.corpus, folder) and ev.long_documents == "truncate"
                and (ix.max_length, ix.truncate_dim) == (ev.max_length, ev.truncate_dim))


def _eval_one(recipe: Recipe, model: str, kind: str | None, folder: str, index_dir: str, overwrite: bool,
              ran: list[bool]) -> dict[str, Any]:
    from embedkit.evaluate.benchmark_runner import results_path
    from embedkit.evaluate.runner import _corpus_key, evaluate

    options = replace(recipe.eval, kind=kind)
    scoring = asdict(narrow(EvalOptions, options))  # not eval.data, output_dir...
    data = Path(folder)
    key = _key(model_fingerprint(model) if Path(model).is_dir() else model, scoring,
               asdict(narrow(IndexSettings, recipe.index)),
               _corpus_key(data), recipe.model.unpadded)
    out = results_path(recipe.eval.output_dir, model, data.name)
    if not overwrite and out.is_file() and read_json(out).get("stage_key") == key:
        return read_json(out)
    reuse = index_dir if _index_fits(recipe, index_dir, folder) else None
    ran.append(True)
    return evaluate(model, data, options, output=out, run_file=out.with_suffix(".trec"), dataset_name=data.name,
                    labels={"stage_key": key}, index=recipe.index, unpadded=recipe.model.unpadded, index_dir=reuse,
                    colbert_library=recipe.colbert.library)


def _eval(recipe: Recipe, model: str, index_dir: str, overwrite: bool) -> tuple[list[dict[str, Any]], str]:
    if not recipe.eval.data:
        return [], "off"
    from embedkit.evaluate.benchmark_runner import run_benchmarks

    ran: list[bool] = []
    results = []
    models = [(model, recipe.kind)] + [(b, recipe.kind) for b in recipe.report.baselines]  # bm25 needs no kind
    for name, kind in models:
        for item in recipe.eval.data:
            if Path(item).expanduser().is_dir():
                results.append(_eval_one(recipe, name, kind, item, index_dir if name == model else "", overwrite,
                                         ran))
            else:  # a benchmark name: one JSON per dataset under eval.output_dir, datasets done are skipped
                run = run_benchmarks(name, item, replace(recipe.eval, kind=kind), output_dir=recipe.eval.output_dir,
                                     cache_dir=recipe.eval.benchmark_cache, mldr_setting=recipe.eval.mldr_setting,
                                     overwrite=overwrite, index=recipe.index, unpadded=recipe.model.unpadded,
                                     colbert_library=recipe.colbert.library)
                logger.info("%s", run.table)
                ran.extend(o.status == "scored" for o in run.outcomes if o.status != "skipped")
                results.extend(o.result for o in run.outcomes if o.result is not None)
                if run.failed:
                    raise EmbedkitError(f"eval: {len(run.failed)} benchmark dataset(s) failed: "
                                        f"{', '.join(o.dataset for o in run.failed)}; rerun to retry them")
    return results, "ran" if ran else "skipped (done)"


def _report(recipe: Recipe, overwrite: bool) -> tuple[str, str]:
    results_dir = Path(recipe.eval.output_dir)
    if not results_dir.is_dir():
        return "", "off"
    from embedkit.evaluate.report import write_report

    out = Path(recipe.report.output_dir)
    files = sorted(results_dir.rglob("*.json"))
    key = _key([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files])
    stamp = out / RUN_MANIFEST
    if not overwrite and stamp.is_file() and read_json(stamp).get("stage_key") == key \
            and (out / "report.md").is_file():
        return str(out / "report.md"), "skipped (done)"
    md_path, _ = write_report([results_dir], out)
    write_json(stamp, {"stage_key": key, "results": [str(p) for p in files]})
    return str(md_path), "ran"


# --------------------------------------------------------------------------- driver

def parse_stages(text: str | Sequence[str] | None) -> tuple[str, ...]:
    if text is None:
        return STAGES
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise EmbedkitError(f"--stages: unknown stage {unknown[0]!r}; use a comma list of {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in names)


def run_pipeline(recipe: Recipe, stages: Sequence[str] = STAGES, overwrite: bool = False,
                 on_stage: Callable[[StageResult], None] | None = None) -> RunResult:
    """Run the recipe's stages in order; a stage left out of ``stages`` still supplies its artefact's path
    (the model folder, the index folder) to the stages after it. ``overwrite`` reruns stages that are done."""
    result = RunResult()

    def timed(stage: str, fn: Callable[[], tuple[Any, str]]) -> Any:
        if stage not in stages:
            return None
        start = time.perf_counter()
        value, status = fn()
        artefact = value if isinstance(value, str) else ""
        done = StageResult(stage, status, time.perf_counter() - start, artefact)
        result.stages.append(done)
        if on_stage:
            on_stage(done)
        logger.info("stage %s: %s (%.0f s)", stage, status, done.seconds)
        return value

    trained = timed("train", lambda: _train(recipe, overwrite))
    model = trained or (recipe.output_dir if recipe.data.train else recipe.model.name)
    if "train" not in stages and recipe.data.train and not Path(model).is_dir():
        raise EmbedkitError(f"{model} holds no trained model yet: run the train stage first")
    result.model = model
    index_dir = timed("index", lambda: _index(recipe, model, overwrite))
    if index_dir is None:
        index_dir = recipe.index.output_dir if recipe.index.corpus else ""
    results = timed("eval", lambda: _eval(recipe, model, index_dir, overwrite))
    result.results = results or []
    timed("report", lambda: _report(recipe, overwrite))
    return result
