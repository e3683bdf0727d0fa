"""`embedkit run recipe.yaml`: train → index → eval → report, each stage skipped when its artefact exists
with the same settings, each resumable after a kill (the stages write to ``.partial`` folders and shards).

Stages read the previous stage's files only: the model folder (or ``model.name`` when the recipe has no
training data), the index folder, the results JSONs. Every input path is checked before any model loads.
Outputs go where :func:`embedkit.config.with_run_paths` puts them: the model in ``output_dir``, the rest in
the run folder beside it. A changed index, eval or report setting reruns that stage (an index rebuilt with
another backend reuses its encoded shards); a trained model is never replaced unless ``overwrite``: a changed
training setting is refused with the list of differences. The eval stage searches the index stage's index
whenever it holds the same documents encoded the same way (a corpus file and its BEIR folder match), so a
corpus is encoded once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from embedkit.artifacts import Policy, check_apart, read_json, settings_key, write_json
from embedkit.config import (EvalConfig, EvalOptions, IndexConfig, Recipe, ReportConfig, narrow, run_folder,
                             with_run_paths)
from embedkit.errors import EmbedkitError
from embedkit.index.registry import NO_MODEL

logger = logging.getLogger(__name__)

STAGES = ("train", "index", "eval", "report")
RUN_MANIFEST = "embedkit-run.json"


@dataclass
class StageResult:
    stage: str
    status: str                 # ran | skipped (done) | off (...)
    seconds: float = 0.0
    artefact: str = ""


@dataclass
class RunResult:
    stages: list[StageResult] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # one per (model, dataset) scored
    model: str = ""
    run_folder: str = ""

    def table(self) -> str:
        """The stages (status, seconds, what each wrote), the run folder, and every score."""
        lines = ["| stage | status | seconds | artefact |", "|---|---|---|---|"]
        lines += [f"| {s.stage} | {s.status} | {s.seconds:.0f} | {s.artefact} |" for s in self.stages]
        if self.run_folder and any(s.artefact.startswith(self.run_folder) for s in self.stages):
            lines += ["", f"run folder: {self.run_folder}"]
        if self.results:
            lines += ["", *scores_table(self.results)]
        return "\n".join(lines)


def scores_table(results: Sequence[dict[str, Any]]) -> list[str]:
    """One row per (model, dataset): nDCG@10, recall at the depth retrieved, MRR@10 (only the metrics there)."""
    from embedkit.evaluate.metrics import depth_of

    depths = {depth_of(r) for r in results}
    ndcg = next((k for k in results[0] if k.startswith("ndcg@")), "ndcg@10") if len(depths) == 1 else "ndcg@10"
    mrr = ndcg.replace("ndcg", "mrr")
    recall = f"Recall@{depths.pop()}" if len(depths) == 1 else "Recall@k"
    header = ["model", "dataset", "backend", f"nDCG@{ndcg[5:]}", recall, f"MRR@{mrr[4:]}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        k = depth_of(r)
        cells = [r.get(ndcg), r.get(f"recall@{k}"), r.get(mrr)]
        text = [f"{v:.4f}" if isinstance(v, (int, float)) else "—" for v in cells]
        if recall == "Recall@k":
            text[1] += f" (k={k})"
        lines.append(f"| {r.get('model_name') or r['model']} | {r['dataset']} | {r.get('backend', '')} | "
                     + " | ".join(text) + " |")
    return lines


def training_recipe(recipe: Recipe) -> Recipe:
    """The recipe the train stage runs: the sections training reads (evaluation after training is the eval
    stage's job, so editing ``index:``, ``eval:`` or ``report:`` never retrains)."""
    keep = EvalConfig(during_training=recipe.eval.during_training, split=recipe.eval.split,
                      batch_size=recipe.eval.batch_size)
    return replace(recipe, index=IndexConfig(), eval=keep, report=ReportConfig())


# --------------------------------------------------------------------------- inputs

def check_inputs(recipe: Recipe, stages: Sequence[str] = STAGES) -> None:
    """Every input path the stages will read, checked before any model loads: a path that does not exist
    locally is reported first as such (and, for a Hub-id-shaped one, why the Hub could not supply it)."""
    from embedkit.data.benchmarks import resolve_benchmarks
    from embedkit.data.inputs import check_local, check_local_or_hub
    from embedkit.train.data import check_source

    trains = "train" in stages and bool(recipe.data.train)
    if trains:
        check_apart(recipe.output_dir, "output_dir", [("data.train", recipe.data.train),
                                                      ("model.name", recipe.model.name)])
        check_local_or_hub(recipe.model.name, "model.name", "model")
        check_local_or_hub(recipe.data.train, "data.train", "dataset")
        check_source(recipe.data.train, "data.train")
        for number, source in enumerate(recipe.data.mix):
            if source.train:
                check_local_or_hub(source.train, f"data.mix[{number}].train", "dataset")
                check_source(source.train, f"data.mix[{number}].train")
        if recipe.eval.during_training:
            check_local(recipe.eval.during_training, "eval.during_training", "folder")
    later = [s for s in ("index", "eval") if s in stages]
    if later and not recipe.data.train and recipe.model.name != NO_MODEL:
        check_local_or_hub(recipe.model.name, "model.name", "model")
    if later and recipe.data.train and not trains and not Path(recipe.output_dir).is_dir():
        raise EmbedkitError(f"{recipe.output_dir} holds no trained model yet: run the train stage first")
    if "index" in stages and recipe.index.corpus:
        check_local_or_hub(recipe.index.corpus, "index.corpus", "dataset")
    if "eval" in stages:
        for number, item in enumerate(recipe.eval.data):
            if Path(item).expanduser().exists():
                check_local(item, f"eval.data[{number}]", "folder")
                continue
            try:
                resolve_benchmarks(item)
            except EmbedkitError:
                raise EmbedkitError(f"eval.data[{number}]: no such local path: {item}, and no benchmark of that "
                                    "name (embedkit benchmarks lists them)") from None
        for number, baseline in enumerate(recipe.report.baselines):
            if baseline != NO_MODEL:
                check_local_or_hub(baseline, f"report.baselines[{number}]", "model")
        retrieve = recipe.eval.retrieve
        for number, other in enumerate(retrieve.fuse_with):
            if other != NO_MODEL:
                check_local(other, f"eval.retrieve.fuse_with[{number}]", "folder")
        if retrieve.rerank_index:
            check_local(retrieve.rerank_index, "eval.retrieve.rerank_index", "folder")
        if retrieve.rerank_model:
            check_local_or_hub(retrieve.rerank_model, "eval.retrieve.rerank_model", "model")


# --------------------------------------------------------------------------- stages

def _train(recipe: Recipe, overwrite: bool) -> tuple[str, str]:
    """The model later stages use, and the stage status."""
    if not recipe.data.train:
        return recipe.model.name, "off (no data.train)"
    from embedkit.train.current import model_currency
    from embedkit.train.run import train

    if not model_currency(recipe).must_make(Policy.REFUSE, overwrite):
        return recipe.output_dir, "skipped (done)"
    return str(train(training_recipe(recipe), overwrite=True)), "ran"


def _index(recipe: Recipe, model: str, overwrite: bool) -> tuple[str, str]:
    cfg = recipe.index
    if not cfg.corpus:
        return "", "off (no index.corpus)"
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index
    from embedkit.index.current import index_currency

    corpus = Corpus(cfg.corpus, subset=cfg.subset, split=cfg.split)
    folder = Path(cfg.output_dir)
    if not overwrite and not index_currency(folder, model, corpus, cfg, kind=recipe.kind).must_make(
            Policy.REBUILD, then="rebuilding it"):
        return str(folder), "skipped (done)"
    build_index(model, corpus, folder, cfg, kind=recipe.kind, overwrite=True)  # cfg carries colbert.library
    return str(folder), "ran"


_FINGERPRINTS: dict[tuple[Any, ...], str | None] = {}


def _corpus_fingerprint(folder: Path, titles: bool) -> str | None:
    """The content fingerprint of a BEIR folder's corpus as evaluation reads it (one pass, remembered while
    the file is unchanged)."""
    from embedkit.data.corpus import Corpus, corpus_file

    file = corpus_file(str(folder))
    if file is None:
        return None
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, titles)
    if key not in _FINGERPRINTS:
        corpus = Corpus(str(folder), skip_empty=False, titles=titles)
        for _ in corpus:
            pass
        _FINGERPRINTS[key] = corpus.fingerprint
    return _FINGERPRINTS[key]


def _eval_one(recipe: Recipe, model: str, kind: str | None, folder: str, index_dir: str, overwrite: bool,
              ran: list[bool]) -> dict[str, Any]:
    from embedkit.evaluate.runner import document_text_of, evaluate
    from embedkit.evaluate.settings import results_currency, results_path, run_settings

    options = narrow(EvalOptions, replace(recipe.eval, kind=kind))
    data = Path(folder)
    document_text = document_text_of(data, options.protocol)
    settings = run_settings(model, options, None, recipe.index, document_text)
    out = results_path(recipe.eval.output_dir, model, data.name)
    if not overwrite and out.is_file():
        fingerprint = _corpus_fingerprint(data, document_text == "title+text")
        if not results_currency(out, settings, fingerprint).must_make(Policy.REBUILD, then="scoring again"):
            return read_json(out)
    ran.append(True)
    return evaluate(model, data, options, output=out, run_file=out.with_suffix(".trec"), dataset_name=data.name,
                    index=recipe.index, index_dir=index_dir or None, document_text=document_text)


def _eval(recipe: Recipe, model: str, index_dir: str, overwrite: bool) -> tuple[list[dict[str, Any]], str]:
    if not recipe.eval.data:
        return [], "off (no eval.data)"
    from embedkit.evaluate.benchmark_runner import run_benchmarks

    ran: list[bool] = []
    results = []
    models = [(model, recipe.kind)] + [(b, recipe.kind) for b in recipe.report.baselines]  # bm25 needs no kind
    for name, kind in models:
        scored = recipe if name in (model, NO_MODEL) else _beside(recipe, [r for r in results if r["model"] == model])
        for item in scored.eval.data:
            if Path(item).expanduser().is_dir():
                results.append(_eval_one(scored, name, kind, item, index_dir if name == model else "", overwrite,
                                         ran))
            else:  # a benchmark name: one JSON per dataset under eval.output_dir, datasets done are skipped
                run = run_benchmarks(name, item, replace(narrow(EvalOptions, scored.eval), kind=kind),
                                     output_dir=scored.eval.output_dir, cache_dir=scored.eval.benchmark_cache,
                                     mldr_setting=scored.eval.mldr_setting, overwrite=overwrite, index=scored.index)
                ran.extend(o.status == "scored" for o in run.outcomes if o.status != "skipped")
                results.extend(o.result for o in run.outcomes if o.result is not None)
                if run.failed:
                    raise EmbedkitError(f"eval: {len(run.failed)} benchmark dataset(s) failed: "
                                        f"{', '.join(o.dataset for o in run.failed)}; rerun to retry them")
    return results, "ran" if ran else "skipped (done)"


def _beside(recipe: Recipe, own: list[dict[str, Any]]) -> Recipe:
    """The recipe a baseline is scored with: at the document length the recipe's own model was scored at (its
    effective one, recorded in its results), so that the rows of a report compare like with like; a length the
    recipe sets (``eval.max_length``) stays. The report marks rows of one dataset scored at different lengths."""
    lengths = {r.get("max_length") for r in own} - {None}
    if recipe.eval.max_length is not None or len(lengths) != 1:
        return recipe
    return replace(recipe, eval=replace(recipe.eval, max_length=lengths.pop()))


def _report(recipe: Recipe, overwrite: bool) -> tuple[str, str]:
    results_dir = Path(recipe.eval.output_dir)
    if not results_dir.is_dir():
        return "", "off (no results yet)"
    from embedkit.evaluate.report import write_report

    out = Path(recipe.report.output_dir)
    files = sorted(results_dir.rglob("*.json"))
    key = settings_key([[(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files], recipe.report.metric])
    stamp = out / RUN_MANIFEST
    artefact = f"{out / 'report.md'}, {out / 'report.png'}"
    if not overwrite and stamp.is_file() and read_json(stamp).get("stage_key") == key \
            and (out / "report.md").is_file() and (out / "report.png").is_file():
        return artefact, "skipped (done)"
    write_report([results_dir], out, recipe.report.metric)
    write_json(stamp, {"stage_key": key, "results": [str(p) for p in files]})
    return artefact, "ran"


# --------------------------------------------------------------------------- driver

def parse_stages(text: str | Sequence[str] | None) -> tuple[str, ...]:
    if text is None:
        return STAGES
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise EmbedkitError(f"--stages: unknown stage {unknown[0]!r}; use a comma list of {', '.join(STAGES)}")
    if not names:
        raise EmbedkitError(f"--stages: no stage named; use a comma list of {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in names)


def run_pipeline(recipe: Recipe, stages: Sequence[str] = STAGES, overwrite: bool = False,
                 on_stage: Callable[[StageResult], None] | None = None) -> RunResult:
    """Run the recipe's stages in order; a stage left out of ``stages`` still supplies its artefact's path
    (the model folder, the index folder) to the stages after it. ``overwrite`` reruns stages that are done
    and replaces a model trained with other settings. Relative index, eval and report folders are placed in
    the run folder (:func:`embedkit.config.run_folder`); each finished stage logs one line."""
    recipe = with_run_paths(recipe)
    check_inputs(recipe, stages)
    result = RunResult(run_folder=str(run_folder(recipe)))
    chosen = [s for s in STAGES if s in stages]

    def timed(stage: str, fn: Callable[[], tuple[Any, str]], artefact: Callable[[Any], str]) -> Any:
        if stage not in stages:
            return None
        start = time.perf_counter()
        value, status = fn()
        done = StageResult(stage, status, time.perf_counter() - start, artefact(value))
        result.stages.append(done)
        if on_stage:
            on_stage(done)
        where = f" -> {done.artefact}" if done.artefact else ""
        took = "" if status.startswith("off") else f" ({done.seconds:.0f} s)"
        logger.info("[%d/%d] %s: %s%s%s", chosen.index(stage) + 1, len(chosen), stage, status, took, where)
        return value

    trained = timed("train", lambda: _train(recipe, overwrite), lambda v: v if recipe.data.train else "")
    model = trained or (recipe.output_dir if recipe.data.train else recipe.model.name)
    if "train" not in stages and recipe.data.train:
        from embedkit.train.current import model_currency

        model_currency(recipe).must_make(Policy.SKIP, then="the train stage is not run, so the later stages use "
                                                          "it as it is")
    result.model = model
    index_dir = timed("index", lambda: _index(recipe, model, overwrite), lambda v: v)
    if index_dir is None:
        index_dir = recipe.index.output_dir if recipe.index.corpus else ""
    results = timed("eval", lambda: _eval(recipe, model, index_dir, overwrite),
                    lambda v: recipe.eval.output_dir if v else "")
    result.results = results or []
    timed("report", lambda: _report(recipe, overwrite), lambda v: v)
    return result
