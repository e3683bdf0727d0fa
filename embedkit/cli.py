"""The ``embedkit`` command: one thin function per sub-command; the library does the work."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

from embedkit.errors import EmbedkitError

logger = logging.getLogger("embedkit")


def _train(args: argparse.Namespace) -> int:
    from embedkit.config import load_recipe
    from embedkit.train.run import train

    recipe = load_recipe(args.recipe, args.set or [])
    if args.dry_run:
        print(recipe.to_yaml(), end="")
        return 0
    path = train(recipe, overwrite=args.overwrite, keep_checkpoints=args.keep_checkpoints)
    print(f"model saved to {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from embedkit.config import load_recipe
    from embedkit.pipeline import parse_stages, run_pipeline

    recipe = load_recipe(args.recipe, args.set or [])
    stages = parse_stages(args.stages)
    result = run_pipeline(recipe, stages, overwrite=args.overwrite,
                          on_stage=lambda s: logger.info("%s: %s (%.0f s)", s.stage, s.status, s.seconds))
    print(result.table())
    return 0


def _index(args: argparse.Namespace) -> int:
    from embedkit.cli_fields import from_args
    from embedkit.config import IndexConfig
    from embedkit.data.corpus import Corpus
    from embedkit.distributed import dist_context
    from embedkit.index.build import add_documents, build_index, build_index_distributed, delete_documents

    cfg = from_args(args, IndexConfig, "index")
    library = _colbert_library(args)
    if args.delete:
        num = delete_documents(cfg.output_dir, args.delete)
        print(f"index {cfg.output_dir} now holds {num} documents")
        return 0
    if not cfg.corpus:
        raise EmbedkitError("index needs --corpus (or --delete ID...)")
    corpus = Corpus(cfg.corpus, subset=cfg.subset, split=cfg.split)
    if args.add:
        num = add_documents(cfg.output_dir, corpus, args.model, batch_size=cfg.batch_size, unpadded=args.unpadded,
                            colbert_library=library)
        print(f"index {cfg.output_dir} now holds {num} documents")
        return 0
    if not args.model and cfg.backend != "bm25":
        raise EmbedkitError("index needs --model (only --backend bm25 needs none)")
    with dist_context() as (rank, world_size):
        common = dict(kind=args.kind, unpadded=args.unpadded, overwrite=args.overwrite, rank=rank,
                      world_size=world_size, colbert_library=library)
        build = build_index_distributed if world_size > 1 else build_index
        path = build(args.model, corpus, cfg.output_dir, cfg, **common)
    if rank == 0:
        print(f"index written to {path}")
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


def _search(args: argparse.Namespace) -> int:
    from embedkit.retrieve.retriever import open_retriever

    index = open_retriever(args.index_dir, _retrieve_config(args), args.model, batch_size=args.batch_size,
                           colbert_library=_colbert_library(args))
    queries = args.query
    results = index.search(queries, k=args.k)
    if args.json:
        print(json.dumps([{"query": q, "hits": [h.__dict__ for h in hits]} for q, hits in zip(queries, results)],
                         ensure_ascii=False, indent=2))
        return 0
    for query, hits in zip(queries, results):
        print(f"query: {query}")
        for rank, hit in enumerate(hits, start=1):
            snippet = " ".join((hit.text or "").split())[:100]
            print(f"{rank:3d}. {hit.score:8.4f}  {hit.id}  {snippet}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from embedkit.cli_fields import from_args
    from embedkit.config import ServeConfig
    from embedkit.serve.startup import run_server

    config = from_args(args, ServeConfig, "serve")
    run_server(args.index_dir, _retrieve_config(args), args.model, args.batch_size, config,
               colbert_library=_colbert_library(args))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from embedkit.cli_fields import from_args
    from embedkit.config import EvalOptions, IndexSettings
    from embedkit.evaluate.runner import evaluate

    options = from_args(args, EvalOptions, "eval")
    library = _colbert_library(args)
    index = from_args(args, IndexSettings, "index", base={k: getattr(options, k)
                                                          for k in ("batch_size", "max_length", "truncate_dim")})
    if args.benchmark:
        from embedkit.evaluate.benchmark_runner import run_benchmarks

        run = run_benchmarks(args.model, args.benchmark, options, output_dir=args.output_dir,
                             data=args.data, mldr_setting=args.mldr_setting, overwrite=args.overwrite,
                             index=index, unpadded=args.unpadded, colbert_library=library)
        print(run.table)
        return 1 if run.failed else 0
    if not args.data:
        raise EmbedkitError("eval needs --data (a BEIR-format folder) or --benchmark NAME")
    result = evaluate(args.model, args.data, options, output=args.output, run_file=args.run_file, index=index,
                      unpadded=args.unpadded, colbert_library=library)
    keys = ("ndcg@10", "recall@100", "mrr@10", "map@100")
    extra = {k: result[k] for k in ("method", "chosen_weights") if k in result}
    print(json.dumps({k: round(result[k], 4) for k in keys} | {"num_queries": result["num_queries"],
                                                                 "num_documents": result["num_documents"]} | extra))
    return 0


def _export(args: argparse.Namespace) -> int:
    from embedkit.models.colbert.export import export_model

    path = export_model(args.model, args.output, args.format, overwrite=args.overwrite)
    print(f"{args.format} model written to {path}")
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from embedkit.quickstart import run_quickstart

    run_quickstart(workdir=args.workdir, train_size=args.train_size, eval_size=args.eval_size,
                   max_steps=args.max_steps, colbert=not args.no_colbert)
    return 0


def _benchmarks(args: argparse.Namespace) -> int:
    from embedkit.evaluate.benchmarks import list_benchmarks_table

    print(list_benchmarks_table())
    return 0


def _report(args: argparse.Namespace) -> int:
    from embedkit.evaluate.report import write_report

    md_path, png_path = write_report(args.results, args.output)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {md_path} and {png_path}")
    return 0


def _colbert_library_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--colbert-library``: the recipe's colbert.library field as a flag (its help, default and checks)."""
    from embedkit.cli_fields import add_fields
    from embedkit.config import ColbertConfig

    add_fields(p, ColbertConfig, "colbert", skip=tuple(f.name for f in dataclasses.fields(ColbertConfig)
                                                         if f.name != "library"))


def _unpadded_flag(p: argparse.ArgumentParser) -> None:
    from embedkit.config import ModelConfig

    help_text = next(f.metadata["help"] for f in dataclasses.fields(ModelConfig) if f.name == "unpadded")
    p.add_argument("--unpadded", choices=["auto", "on", "off"], default="auto", help=help_text)


DESCRIPTION = """\
embedkit turns an encoder (ModernBERT, MiniLM, any sentence-transformers model) into a retriever:
fine-tune a dense (one vector per text) or ColBERT (one vector per token) model from a YAML recipe,
index a corpus (FAISS flat/HNSW/IVF-PQ, PLAID, exact MaxSim, or BM25), and score it on BEIR-format
data and named benchmarks (BEIR, MLDR, CodeSearchNet), with a report next to the ModernBERT paper.

  embedkit run recipe.yaml          all stages of a recipe: train, index, eval, report (each skipped
                                    when done, resumed when interrupted)
  embedkit quickstart               offline demo on Python code search, a few minutes on a CPU

Every sub-command has --help; -v shows the libraries' own logs and warnings."""


def _add_searcher_options(p: argparse.ArgumentParser, batch_size: int = 64, batch_help: str = "") -> None:
    """What ``search`` and ``serve`` open: an index, its model, and RetrieveConfig's flags (the recipe's
    eval.retrieve section), one per field."""
    from embedkit.cli_fields import add_fields
    from embedkit.config import RetrieveConfig

    p.add_argument("--index-dir", required=True)
    p.add_argument("--model", default=None, help="must be the model the index was built with")
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help=f"texts per forward pass of the encoder{batch_help} (default: {batch_size})")
    _colbert_library_flag(p)
    add_fields(p.add_argument_group("fusion and reranking"), RetrieveConfig, "retrieve")


SERVE_DESCRIPTION = """\
Serve an index and its model over HTTP: POST /search, POST /v1/embeddings and GET /v1/models (OpenAI-
compatible), POST /rerank (Infinity / Cohere shape), GET /metrics (Prometheus), GET|HEAD /health, GET /info.
Loopback only by default; to expose it, bind --host 0.0.0.0 and set EMBEDKIT_API_KEY (every route but
/health then needs 'Authorization: Bearer KEY'). Limits left unset follow the model and the index."""

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


def _parser() -> argparse.ArgumentParser:
    from embedkit.cli_fields import add_fields
    from embedkit.config import EncodeSettings, EvalOptions, IndexConfig, IndexSettings

    parser = argparse.ArgumentParser(prog="embedkit", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, including the dependencies' load reports and warnings")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a recipe's stages: train → index → eval → report")
    p.add_argument("recipe")
    p.add_argument("--stages", default=None, metavar="LIST",
                   help="comma list of train,index,eval,report (default: all, in that order)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="rerun stages whose artefacts are already done")
    p.set_defaults(func=_run)

    p = sub.add_parser("train", help="fine-tune a retriever from a YAML recipe")
    p.add_argument("recipe")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output_dir")
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the resolved recipe and stop")
    p.set_defaults(func=_train)

    p = sub.add_parser("index", help="encode a corpus and build an index (the recipe's index: section as flags)")
    p.add_argument("--model", default=None, help="model folder or hub id (not needed for --backend bm25)")
    p.add_argument("--kind", choices=["dense", "colbert"], default=None, help="default: from the model folder")
    _unpadded_flag(p)
    _colbert_library_flag(p)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--add", "--append", dest="add", action="store_true",
                   help="add the corpus's documents to the existing --index-dir")
    p.add_argument("--delete", nargs="+", metavar="ID", default=None, help="remove these document ids")
    add_fields(p, IndexConfig, "index")
    p.set_defaults(func=_index)

    p = sub.add_parser("search", help="search an index by query text")
    p.add_argument("query", nargs="+")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    _add_searcher_options(p)
    p.set_defaults(func=_search)

    p = sub.add_parser("serve", help="HTTP API over an index: /search, /v1/embeddings, /rerank, /metrics",
                       description=SERVE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_searcher_options(p, batch_size=8, batch_help=": the texts of a micro-batch are sorted by length and run "
                          "in passes of this size, so short queries are not padded to the longest one (8 gave "
                          "2-3x the throughput of 64 on stdlib docstring queries with MiniLM)")
    _add_serve_options(p.add_argument_group("server (address, security, limits, batching, threads)"))
    p.set_defaults(func=_serve)

    p = sub.add_parser("eval", help="score a model (or bm25) on a BEIR folder or a named benchmark")
    p.add_argument("--model", required=True, help="model folder, hub id, or 'bm25'")
    p.add_argument("--data", default=None, help="BEIR-format folder")
    p.add_argument("--benchmark", default=None, help="e.g. beir, beir/scifact, mldr, csn/python (comma list)")
    p.add_argument("--output", default=None, help="results JSON")
    p.add_argument("--output-dir", default="results", help="with --benchmark: one JSON per dataset")
    p.add_argument("--run-file", default=None, help="also write a TREC run file")
    p.add_argument("--mldr-setting", choices=["ood", "id"], default="ood",
                   help="MLDR results: 'id' if the model was fine-tuned on MLDR's training split (the paper's "
                        "MLDR-ID column), else 'ood'")
    _unpadded_flag(p)
    _colbert_library_flag(p)
    add_fields(p, EvalOptions, "eval")
    add_fields(p.add_argument_group("index backend"), IndexSettings, "index",
               skip=tuple(f.name for f in dataclasses.fields(EncodeSettings)))
    p.add_argument("--overwrite", action="store_true",
                   help="with --benchmark: score again datasets already scored with the same model and settings")
    p.set_defaults(func=_eval)

    from embedkit.models.colbert.export import EXPORTS

    p = sub.add_parser(
        "export", help="write a ColBERT model in another library's format (PyLate)",
        description="Convert a ColBERT model saved by sentence-transformers' MultiVectorEncoder (what embedkit "
                    "trains with colbert.library: sentence-transformers) into PyLate's folder layout, file by file "
                    "(runs in either environment, loads no model). PyLate folders need no export: "
                    "MultiVectorEncoder reads them as they are.",
        epilog="example: embedkit export --format pylate runs/my-colbert runs/my-colbert-pylate")
    p.add_argument("model", help="a MultiVectorEncoder model folder")
    p.add_argument("output", help="the folder to write (it must not exist, unless --overwrite)")
    p.add_argument("--format", choices=list(EXPORTS), default="pylate",
                   help="the format to write: pylate = pylate.models.ColBERT (PyLate 1.6) (default: 'pylate')")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_export)

    p = sub.add_parser("quickstart", help="offline demo: fine-tune MiniLM on code search and compare with BM25")
    p.add_argument("--workdir", default="runs/quickstart")
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--eval-size", type=int, default=2000)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--no-colbert", action="store_true")
    p.set_defaults(func=_quickstart)

    p = sub.add_parser("benchmarks", help="list the named benchmarks")
    p.set_defaults(func=_benchmarks)

    p = sub.add_parser("report", help="markdown table + PNG chart of results next to the paper's")
    p.add_argument("results", nargs="+", help="results folders or JSON files")
    p.add_argument("--output", default="report")
    p.set_defaults(func=_report)

    from embedkit.train.commands import register  # mine, sweep

    register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from embedkit.quiet import configure_logging

    configure_logging(verbose=args.verbose)
    try:
        return args.func(args)
    except EmbedkitError as exc:
        print(f"embedkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embedkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
