"""The ``embedkit`` command: one thin function per sub-command; the library does the work.

Each sub-command checks its input paths before it loads anything, prints its results on stdout (tables,
JSON with ``--json``) and everything else (progress, where artefacts went) on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import typing

from embedkit.errors import EmbedkitError

logger = logging.getLogger("embedkit")


# --------------------------------------------------------------------------- sub-commands

def _train(args: argparse.Namespace) -> int:
    from embedkit.artifacts import Policy
    from embedkit.pipeline import check_inputs
    from embedkit.train.current import model_currency
    from embedkit.train.recipes import load_recipe
    from embedkit.train.run import train

    recipe = load_recipe(args.recipe, args.set or [])
    if args.dry_run:
        print(recipe.to_yaml(), end="")
        return 0
    check_inputs(recipe, ("train",))
    if not recipe.data.train:
        raise EmbedkitError(f"{args.recipe}: data.train is not set: there is nothing to train on")
    if not model_currency(recipe).must_make(Policy.REFUSE, args.overwrite):
        logger.info("%s already holds the model this recipe trains (--overwrite trains it again)", recipe.output_dir)
        print(recipe.output_dir)
        return 0
    path = train(recipe, overwrite=args.overwrite, keep_checkpoints=args.keep_checkpoints)
    logger.info("model saved to %s", path)
    print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from embedkit.pipeline import parse_stages, run_pipeline
    from embedkit.train.recipes import load_recipe

    recipe = load_recipe(args.recipe, args.set or [])
    stages = parse_stages(args.stages)
    result = run_pipeline(recipe, stages, overwrite=args.overwrite)
    print(result.table())
    return 0


def _index(args: argparse.Namespace) -> int:
    from embedkit.cli_fields import from_args
    from embedkit.config import IndexConfig
    from embedkit.data.inputs import check_local, check_local_or_hub
    from embedkit.index.registry import BACKENDS, NO_MODEL, check_available, needs_model

    cfg = dataclasses.replace(from_args(args, IndexConfig, "index"), colbert_library=_colbert_library(args))
    check_available(cfg.backend)
    if args.delete:
        check_local(cfg.output_dir, "--index-dir", "folder")
        from embedkit.index.build import delete_documents

        num = delete_documents(cfg.output_dir, args.delete)
        logger.info("deleted %d documents", len(set(args.delete)))
        print(f"index {cfg.output_dir} now holds {num} documents")
        return 0
    if args.push or args.pull:
        check_local(cfg.output_dir, "--index-dir", "folder")
        from embedkit.index.qdrant_sync import pull, push

        num = push(cfg.output_dir, cfg.qdrant, args.overwrite) if args.push else pull(cfg.output_dir, args.overwrite)
        print(f"index {cfg.output_dir}: {num} points {'pushed to' if args.push else 'pulled into'} "
              f"{cfg.qdrant.url or 'its local shard'}")
        return 0
    if not cfg.corpus:
        raise EmbedkitError("index needs --corpus (or --delete ID...)")
    check_local_or_hub(cfg.corpus, "--corpus", "dataset")
    if args.add:
        check_local(cfg.output_dir, "--index-dir", "folder")
    elif not args.model and needs_model(cfg.backend):
        model_free = " or ".join(f"--backend {name}" for name in BACKENDS if not needs_model(name))
        raise EmbedkitError(f"index needs --model (only {model_free} needs none)")
    if args.model and args.model != NO_MODEL:
        check_local_or_hub(args.model, "--model", "model")
    if not args.add:
        from embedkit.artifacts import check_apart, check_replaceable, check_writable
        from embedkit.index.base import MANIFEST

        check_apart(cfg.output_dir, "--index-dir", [("--corpus", cfg.corpus), ("--model", args.model)])
        check_writable(cfg.output_dir, "--index-dir", "folder")
        check_replaceable(cfg.output_dir, MANIFEST, "an index")
    from embedkit.data.corpus import Corpus
    from embedkit.distributed import dist_context
    from embedkit.artifacts import Policy
    from embedkit.index.build import add_documents, build_index, build_index_distributed
    from embedkit.index.current import index_currency

    corpus = Corpus(cfg.corpus, subset=cfg.subset, split=cfg.split)
    if args.add:
        num = add_documents(cfg.output_dir, corpus, args.model, cfg)
        print(f"index {cfg.output_dir} now holds {num} documents")
        return 0
    if not args.overwrite and not index_currency(cfg.output_dir, args.model, corpus, cfg, args.kind).must_make(
            Policy.REFUSE):
        logger.info("%s already holds this index: same documents, model and settings (--overwrite rebuilds it)",
                    cfg.output_dir)
        print(cfg.output_dir)
        return 0
    with dist_context() as (rank, world_size):
        common = dict(kind=args.kind, overwrite=args.overwrite, rank=rank, world_size=world_size)
        build = build_index_distributed if world_size > 1 else build_index
        path = build(args.model, corpus, cfg.output_dir, cfg, **common)
    if rank == 0:
        print(path)
    return 0


def _retrieve_config(args: argparse.Namespace):
    from embedkit.cli_fields import from_args
    from embedkit.config import RetrieveConfig

    return from_args(args, RetrieveConfig, "retrieve")


def _colbert_library(args: argparse.Namespace) -> str:
    """``--colbert-library`` (the recipe's colbert.library). An explicit choice is checked before any work (an
    unknown name, or a library this environment cannot use, is one clear error); ``auto`` only when a colbert
    model is loaded, so dense and bm25 work needs no ColBERT library."""
    from embedkit.cli_fields import from_args
    from embedkit.config import ColbertConfig
    from embedkit.models.colbert.registry import AUTO, check_library

    library = from_args(args, ColbertConfig, "colbert").library
    if library != AUTO:
        check_library(library)
    return library


def _query_encoding(args: argparse.Namespace):
    """The encoding settings of search and serve: ``--batch-size``, ``--model-backend`` (as on index and eval)
    and ``--colbert-library``."""
    from embedkit.cli_fields import from_args
    from embedkit.config import EncodeSettings

    return dataclasses.replace(from_args(args, EncodeSettings, "encode"), batch_size=args.batch_size,
                               colbert_library=_colbert_library(args))


def _search(args: argparse.Namespace) -> int:
    from embedkit.data.inputs import check_local, check_local_or_hub

    check_local(args.index_dir, "--index-dir", "folder")
    if args.model:
        check_local_or_hub(args.model, "--model", "model")
    from embedkit.retrieve.retriever import open_retriever

    index = open_retriever(args.index_dir, _retrieve_config(args), args.model, _query_encoding(args))
    queries = args.query
    explain = getattr(index.searched_index, "explain", None) if args.explain else None
    if args.explain and explain is None:
        raise EmbedkitError(f"--explain shows the matching terms of sparse indexes; {args.index_dir} is a "
                            f"{index.searched_index.manifest.kind} index")
    results = index.search(queries, k=args.k)
    terms = [_matched_terms(index, explain, q, len(hits)) if explain else [None] * len(hits)
             for q, hits in zip(queries, results)]
    if args.json:
        print(json.dumps([{"query": q, "hits": [h.__dict__ | ({"terms": t} if t is not None else {})
                                                for h, t in zip(hits, ts)]}
                          for q, hits, ts in zip(queries, results, terms)], ensure_ascii=False, indent=2))
        return 0
    for query, hits, ts in zip(queries, results, terms):
        print(f"query: {query}")
        for rank, (hit, t) in enumerate(zip(hits, ts), start=1):
            snippet = " ".join((hit.text or "").split())[:100]
            print(f"{rank:3d}. {hit.score:8.4f}  {hit.id}  {snippet}")
            if t is not None:
                print("      matched: " + ", ".join(f"{term} {score:.3f}" for term, score in t))
    return 0


def _matched_terms(index, explain, query: str, count: int) -> list:
    """The top terms each of a query's ``count`` hits matched (a sparse index's ``explain``)."""
    _, positions = index.search_positions([query], count)
    return explain(query, [int(p) for p in positions[0][:count]])


def _serve(args: argparse.Namespace) -> int:
    from embedkit.cli_fields import from_args
    from embedkit.config import ServeConfig
    from embedkit.serve.startup import run_server

    config = from_args(args, ServeConfig, "serve")
    run_server(args.index_dir, _retrieve_config(args), args.model, _query_encoding(args), config)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from embedkit.cli_fields import from_args
    from embedkit.config import EvalOptions, IndexSettings
    from embedkit.data.inputs import check_local, check_local_or_hub
    from embedkit.index.registry import NO_MODEL, check_available

    options = dataclasses.replace(from_args(args, EvalOptions, "eval"), colbert_library=_colbert_library(args))
    index = from_args(args, IndexSettings, "index", base={k: getattr(options, k)
                                                          for k in ("batch_size", "max_length", "truncate_dim")})
    check_available(index.backend)
    if args.model != NO_MODEL:
        check_local_or_hub(args.model, "--model", "model")
    if args.data:
        check_local(args.data, "--data", "folder")
    from embedkit.artifacts import check_apart, check_results_file, check_writable

    inputs = [("--data", args.data), ("--model", args.model)]
    for flag, path in (("--output", args.output), ("--run-file", args.run_file)):
        check_apart(path, flag, inputs)
    check_results_file(args.output, "--output")
    if args.run_file:
        check_writable(args.run_file, "--run-file")
    if args.mteb_results:
        from embedkit.evaluate.mteb_results import check_mteb

        check_apart(args.mteb_results, "--mteb-results", inputs)
        check_writable(args.mteb_results, "--mteb-results", "folder")
        check_mteb()
    if args.benchmark:
        check_apart(args.output_dir, "--output-dir", inputs)
        check_writable(args.output_dir, "--output-dir", "folder")
        from embedkit.evaluate.benchmark_runner import run_benchmarks

        run = run_benchmarks(args.model, args.benchmark, options, output_dir=args.output_dir,
                             data=args.data, mldr_setting=args.mldr_setting, overwrite=args.overwrite,
                             index=index)
        written = [o for o in run.outcomes if o.result is not None]
        if written:
            logger.info("results in %s", args.output_dir)
        else:
            logger.info("no results written to %s: no dataset was scored", args.output_dir)
        _write_mteb_results([o.result for o in written], args.mteb_results)
        print(run.table)
        return 1 if run.failed else 0
    if not args.data:
        raise EmbedkitError("eval needs --data (a BEIR-format folder) or --benchmark NAME")
    from embedkit.evaluate.runner import evaluate

    if args.index_dir:
        check_local(args.index_dir, "--index-dir", "folder")
    result = evaluate(args.model, args.data, options, output=args.output, run_file=args.run_file, index=index,
                      index_dir=args.index_dir)
    for what, path in (("results", args.output), ("run file", args.run_file)):
        if path:
            logger.info("%s written to %s", what, path)
    if not args.output:
        logger.info("results not saved (pass --output FILE to keep them)")
    _write_mteb_results([result], args.mteb_results)
    from embedkit.evaluate.metrics import metric_keys

    keys = metric_keys(options.k)
    extra = {k: result[k] for k in ("method", "chosen_weights") if k in result}
    print(json.dumps({k: round(result[k], 4) for k in keys} | {"k": options.k, "num_queries": result["num_queries"],
                                                                 "num_documents": result["num_documents"]} | extra))
    return 0


def _write_mteb_results(results: list[dict], folder: str | None) -> None:
    """``--mteb-results DIR``: MTEB's result files of the results that belong to a benchmark MTEB has."""
    if not folder:
        return
    from embedkit.evaluate.mteb_results import write_mteb_results

    for path in write_mteb_results(results, folder):
        logger.info("MTEB result written to %s", path)


def _export(args: argparse.Namespace) -> int:
    from embedkit.models.colbert.export import export_model

    path = export_model(args.model, args.output, args.format, overwrite=args.overwrite)
    print(f"{args.format} model written to {path}")
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from embedkit.quickstart import run_quickstart

    run_quickstart(workdir=args.workdir, train_size=args.train_size, eval_size=args.eval_size,
                   max_steps=args.max_steps, colbert=not args.no_colbert, sparse=args.sparse)
    return 0


def _benchmarks(args: argparse.Namespace) -> int:
    from embedkit.data.benchmarks import list_benchmarks_table

    print(list_benchmarks_table())
    return 0


def _report(args: argparse.Namespace) -> int:
    from embedkit.cli_fields import from_args
    from embedkit.config import ReportConfig
    from embedkit.data.inputs import check_local
    from embedkit.evaluate.report import write_report

    cfg = from_args(args, ReportConfig, "report")
    for path in args.results:
        check_local(path, "results")
    from embedkit.artifacts import check_apart, check_writable

    check_apart(cfg.output_dir, "--output", [("results", path) for path in args.results])
    check_writable(cfg.output_dir, "--output", "folder")
    md_path, png_path = write_report(args.results, cfg.output_dir, cfg.metric)
    logger.info("wrote %s and %s", md_path, png_path)
    print(md_path.read_text(encoding="utf-8"), end="")
    return 0


def _mine(args: argparse.Namespace) -> int:
    from embedkit.cli_fields import from_args
    from embedkit.config import ColumnsConfig, MiningOptions
    from embedkit.train.mining import mine

    report = mine(args.data, args.output, args.model, from_args(args, MiningOptions, "mine"),
                  columns=ColumnsConfig(query=args.query_column, positive=args.positive_column),
                  subset=args.subset, split=args.split, max_samples=args.max_samples)
    print(f"wrote {report.rows_out} rows with {report.num_negatives} negatives each to {report.output} "
          f"({report.dropped} of {report.rows_in} rows dropped: too few valid candidates)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from embedkit.train.sweep import run_sweep

    only = None
    if args.only_index:
        try:
            only = [int(i) for part in args.only_index for i in part.split(",") if i.strip()]
        except ValueError:
            raise EmbedkitError(f"--only-index: expected variant numbers like 0,2, got {args.only_index}") from None
        if not only:
            raise EmbedkitError("--only-index: no variant number given")
    result = run_sweep(args.recipe, args.set_grid, overrides=args.set or [], only=only, keep=args.keep,
                       overwrite=args.overwrite, sweep_dir=args.sweep_dir)
    print(result.table)
    if result.complete:
        w = result.winner
        print(f"\nwinner: variant {w.index} ({', '.join(w.assignments)}), mean nDCG@10 {w.mean:.4f}: {w.output_dir}")
        print(f"table: {result.sweep_dir / 'sweep.md'}")
    else:
        print(f"\n{len(result.results)} variants finished so far; rerun without --only-index once all are done")
    return 0


def _colbert_library_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--colbert-library``: the recipe's colbert.library field as a flag (its help, default and checks)."""
    from embedkit.cli_fields import add_fields
    from embedkit.config import ColbertConfig

    add_fields(p, ColbertConfig, "colbert", skip=tuple(f.name for f in dataclasses.fields(ColbertConfig)
                                                         if f.name != "library"))


# --------------------------------------------------------------------------- parser

def _count(text: str) -> int:
    """A flag's whole number of at least 1 (a count, a size, k); an over-long value is not echoed whole.

    >>> _count("3")
    3
    """
    try:
        value = int(text) if len(text) <= 40 else None
    except ValueError:
        value = None
    if value is None or not 1 <= value <= _MAX_COUNT:
        shown = repr(text) if len(text) <= 40 else repr(text[:20]) + f"... ({len(text)} characters)"
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {_MAX_COUNT}, got {shown}")
    return value


_MAX_COUNT = 2**31 - 1  # what FAISS, numpy indexing and torch take as a count


def _add_searcher_options(p: argparse.ArgumentParser, batch_size: int = 64, batch_help: str = "") -> None:
    """What ``search`` and ``serve`` open: an index, its model, and RetrieveConfig's flags (the recipe's
    eval.retrieve section), one per field, in the fusion and reranking groups."""
    from embedkit.cli_fields import add_fields
    from embedkit.config import RetrieveConfig

    p.add_argument("--index-dir", required=True, metavar="DIR", help="The index folder to search.")
    p.add_argument("--model", default=None, help="The model that encodes queries. Default: the one the index was "
                   "built with (another model is refused).")
    p.add_argument("--batch-size", type=_count, default=batch_size, metavar="INT",
                   help=f"Query encoding batch size{batch_help} (default: {batch_size}).")
    _colbert_library_flag(p)
    from embedkit.config import EncodeSettings

    add_fields(p, EncodeSettings, "encode", skip=tuple(f.name for f in dataclasses.fields(EncodeSettings)
                                                       if f.name != "model_backend"))
    add_fields(p, RetrieveConfig, "retrieve")


# Given as typed, never read as YAML: a key like 0123 or 'yes' must stay the text it is.
_RAW_TEXT_FIELDS = ("api_key", "served_model_name")


def _add_serve_options(group: argparse._ArgumentGroup) -> None:
    from embedkit.cli_fields import add_fields
    from embedkit.config import ServeConfig

    add_fields(group, ServeConfig, "serve", skip=_RAW_TEXT_FIELDS)
    for f in dataclasses.fields(ServeConfig):
        if f.name in _RAW_TEXT_FIELDS:
            group.add_argument("--" + f.name.replace("_", "-"), dest=f"serve.{f.name}", default=argparse.SUPPRESS,
                               metavar="TEXT", help=f"{f.metadata['help']} (default: {f.default!r})")


class _Parser(argparse.ArgumentParser):
    """argparse with embedkit's one error line: ``embedkit: error: search: argument -k: ...`` (after the usage),
    exit code 2; sub-command parsers are of this class too."""

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        command = self.prog.removeprefix("embedkit").strip()
        self.exit(2, f"embedkit: error: {command + ': ' if command else ''}{message}\n")


def _parser() -> argparse.ArgumentParser:
    from embedkit.cli_fields import add_fields
    from embedkit.cli_help import DESCRIPTION, command
    from embedkit.config import (EncodeSettings, EvalOptions, IndexConfig, IndexSettings, Kind, MiningOptions,
                                 MldrSetting, ReportConfig)

    parser = _Parser(prog="embedkit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Debug logging, including the dependencies' load reports, warnings and the trainer's "
                             "log lines.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overrides = dict(action="append", metavar="KEY=VALUE",
                     help="Override a recipe key, e.g. --set training.learning_rate=5e-5 (repeatable).")

    p = command(sub, "run", "run a recipe's stages: train → index → eval → report")
    p.add_argument("recipe", help="The YAML recipe (recipes/ holds examples).")
    p.add_argument("--stages", default=None, metavar="LIST",
                   help="Comma-separated stages to run, of train,index,eval,report (default: all, in that order).")
    p.add_argument("--set", **overrides)
    p.add_argument("--overwrite", action="store_true",
                   help="Run every stage again, replacing what exists, including a model trained with other "
                        "settings.")
    p.set_defaults(func=_run)

    p = command(sub, "train", "fine-tune a retriever from a YAML recipe")
    p.add_argument("recipe", help="The YAML recipe (recipes/ holds examples).")
    p.add_argument("--set", **overrides)
    p.add_argument("--overwrite", action="store_true",
                   help="Train again and replace output_dir, even when it holds a model (of this or another recipe).")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="Keep the intermediate checkpoints in output_dir/checkpoints once training has finished.")
    p.add_argument("--dry-run", action="store_true", help="Print the resolved recipe and stop.")
    p.set_defaults(func=_train)

    p = command(sub, "index", "encode a corpus and build an index folder")
    p.add_argument("--model", default=None,
                   help="The model folder or Hugging Face id that encodes the documents (none for --backend bm25).")
    p.add_argument("--kind", choices=list(typing.get_args(Kind)), default=None,
                   help="dense or colbert. Default: read from the model folder.")
    p.add_argument("--overwrite", action="store_true", help="Replace an index that --index-dir already holds.")
    p.add_argument("--add", "--append", dest="add", action="store_true",
                   help="Add the corpus's documents to the existing --index-dir.")
    p.add_argument("--delete", nargs="+", metavar="ID", default=None,
                   help="Remove these document ids from --index-dir (no model needed).")
    p.add_argument("--push", action="store_true",
                   help="Copy the points of the qdrant index --index-dir from its local shard to the server "
                        "collection --qdrant-url / --qdrant-collection, which it then searches.")
    p.add_argument("--pull", action="store_true",
                   help="Copy the server collection the qdrant index --index-dir searches into a local shard in "
                        "its folder, which it then searches.")
    p.add_argument_group("corpus and index folder")
    _colbert_library_flag(p.add_argument_group("encoding"))
    add_fields(p, IndexConfig, "index", group="encoding")
    p.set_defaults(func=_index)

    p = command(sub, "search", "search an index by query text")
    p.add_argument("query", nargs="+", help="One or more queries (quote each).")
    p.add_argument("-k", type=_count, default=10, help="Hits to show per query (default: 10).")
    p.add_argument("--json", action="store_true",
                   help="Print the hits as JSON (query, then id, score and text of each hit).")
    p.add_argument("--explain", action="store_true",
                   help="Sparse indexes: show the terms each hit matched, with their share of its score.")
    _add_searcher_options(p)
    p.set_defaults(func=_search)

    p = command(sub, "serve", "HTTP API over an index: /search, /v1/embeddings, /rerank, /metrics")
    _add_searcher_options(p, batch_size=8, batch_help=": the texts of a micro-batch are sorted by length and run "
                          "in passes of this size, so short queries are not padded to the longest one (8 gave "
                          "2-3x the throughput of 64 on stdlib docstring queries with MiniLM)")
    _add_serve_options(p.add_argument_group("server (address, security, limits, batching, threads)"))
    p.set_defaults(func=_serve)

    p = command(sub, "eval", "score a model (or bm25) on a BEIR folder or a named benchmark")
    p.add_argument("--model", required=True, help="The model folder, a Hugging Face id, or bm25.")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="A BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); with one "
                        "--benchmark name, a local copy of that benchmark.")
    p.add_argument("--benchmark", default=None, metavar="NAMES",
                   help="Comma-separated benchmark names or groups, e.g. beir/scifact,csn/python or beir-dev4.")
    p.add_argument("--output", default=None, metavar="FILE", help="Write the results JSON here (with --data).")
    p.add_argument("--output-dir", default="results", metavar="DIR",
                   help="With --benchmark: the folder of one results JSON per dataset (default: results).")
    p.add_argument("--run-file", default=None, metavar="FILE", help="Also write the ranking as a TREC run file.")
    p.add_argument("--index-dir", default=None, metavar="DIR",
                   help="With --data: an index of its corpus (embedkit index, or a run's index folder) to search "
                        "when it holds the same documents encoded the same way, instead of encoding them again.")
    p.add_argument("--mteb-results", default=None, metavar="DIR",
                   help="Also write MTEB's result files (DIR/results/<model>/<revision>/<Task>.json, loaded by "
                        "mteb.ResultCache(DIR).load_results) for the benchmarks MTEB has; needs embedkit[eval].")
    p.add_argument("--mldr-setting", choices=list(typing.get_args(MldrSetting)), default="ood",
                   help="MLDR results: id if the model was fine-tuned on MLDR's training split (the paper's "
                        "MLDR-ID column), else ood (default: ood).")
    p.add_argument("--overwrite", action="store_true",
                   help="With --benchmark: score again the datasets already scored with the same model and settings.")
    _colbert_library_flag(p)
    add_fields(p, EvalOptions, "eval")
    add_fields(p, IndexSettings, "index", group="index backend",
               skip=tuple(f.name for f in dataclasses.fields(EncodeSettings)) + ("shard_size", "keep_shards"))
    p.set_defaults(func=_eval)

    from embedkit.models.colbert.export import EXPORTS

    p = command(sub, "export", "write a ColBERT model in another library's format (PyLate)")
    p.add_argument("model", help="A MultiVectorEncoder model folder.")
    p.add_argument("output", help="The folder to write (it must not exist, unless --overwrite).")
    p.add_argument("--format", choices=list(EXPORTS), default=next(iter(EXPORTS)),
                   help="The format to write: pylate = pylate.models.ColBERT (PyLate 1.6) (default: pylate).")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    p.set_defaults(func=_export)

    p = command(sub, "quickstart", "offline demo: fine-tune MiniLM on code search and compare with BM25")
    p.add_argument("--workdir", default="runs/quickstart", metavar="DIR",
                   help="Where the data, models, indexes and reports go (default: runs/quickstart).")
    p.add_argument("--train-size", type=_count, default=2000, metavar="INT",
                   help="Training pairs extracted from the installed packages (default: 2000).")
    p.add_argument("--eval-size", type=_count, default=2000, metavar="INT",
                   help="Python stdlib functions in the scored corpus (default: 2000; 500 of them are queried).")
    p.add_argument("--max-steps", type=_count, default=None, metavar="INT",
                   help="Stop training after this many updates (default: the recipes' own).")
    p.add_argument("--no-colbert", action="store_true", help="Run the dense recipe only, not the ColBERT one.")
    p.add_argument("--sparse", action="store_true",
                   help="Also train the sparse (SPLADE) recipe on the same pairs and add its row and a hybrid (RRF "
                        "with the dense model) row. Off by default: MiniLM ships no MLM head transform, so a few "
                        "steps from it give a weak sparse model.")
    p.set_defaults(func=_quickstart)

    p = command(sub, "benchmarks", "list the named benchmarks")
    p.set_defaults(func=_benchmarks)

    p = command(sub, "report", "markdown + PNG of results, per dataset and next to the paper")
    p.add_argument("results", nargs="+", help="Results folders (searched recursively) or JSON files.")
    add_fields(p, ReportConfig, "report", skip=("baselines",))
    p.set_defaults(func=_report)

    p = command(sub, "mine", "add hard negatives to (query, positive) data, from a dense model or BM25")
    p.add_argument("--model", required=True,
                   help="The sentence-transformers model folder or Hugging Face id that ranks candidates, or bm25.")
    p.add_argument("--data", required=True, metavar="PATH",
                   help="(query, positive) rows: a JSONL, Parquet or CSV file or folder, or a Hugging Face dataset id.")
    p.add_argument("--output", required=True, metavar="FILE", help="The JSONL to write: query, positive, "
                   "negative_1..n.")
    add_fields(p, MiningOptions, "mine")
    p.add_argument("--query-column", default="query", metavar="NAME",
                   help="Column holding the query (default: query).")
    p.add_argument("--positive-column", default="positive", metavar="NAME",
                   help="Column holding the relevant document (default: positive).")
    p.add_argument("--subset", default=None, help="Hugging Face dataset configuration.")
    p.add_argument("--split", default="train", help="Split to read (default: train).")
    p.add_argument("--max-samples", type=_count, default=None, metavar="INT", help="Mine for at most this many rows.")
    p.set_defaults(func=_mine)

    p = command(sub, "sweep", "train a recipe over a grid of settings and keep the best by mean nDCG@10")
    p.add_argument("recipe", help="the YAML recipe every variant starts from")
    p.add_argument("--set-grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="values to sweep (repeatable: the grid is their product)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key for every variant")
    p.add_argument("--only-index", action="append", metavar="I[,J...]",
                   help="train only these variants (0-based), e.g. one process per GPU")
    p.add_argument("--keep", choices=["best", "all"], default="best",
                   help="best: delete the other variants' models once the sweep is complete")
    p.add_argument("--sweep-dir", default=None, help="default: <output_dir>-sweep")
    p.add_argument("--overwrite", action="store_true", help="retrain variants that already finished")
    p.set_defaults(func=_sweep)
    return parser


def _error(message: str) -> int:
    """Print the one error line (on a line of its own: open progress bars are ended first); exit code 2."""
    from embedkit.quiet import end_progress_lines

    end_progress_lines()
    print(f"embedkit: error: {' '.join(message.splitlines())}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from embedkit.quiet import configure_logging

    configure_logging(verbose=args.verbose)
    try:
        return args.func(args)
    except EmbedkitError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print("embedkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout piped into a reader that stopped early (| head): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a path the checks before the work could not foresee (a disk full, a race)
        if exc.errno is None or exc.strerror is None:
            raise
        where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        return _error(f"{where}: {exc.strerror}" if where else exc.strerror)


if __name__ == "__main__":
    raise SystemExit(main())
