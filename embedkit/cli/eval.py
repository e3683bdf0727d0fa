"""``embedkit eval``: score a model (or bm25) on a BEIR folder or named benchmarks; prints the metrics as JSON
(one folder) or a table (benchmarks)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import typing

from embedkit.cli.helptext import command

logger = logging.getLogger("embedkit")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from embedkit.cli.fields import add_fields
    from embedkit.cli.options import add_colbert_library
    from embedkit.config import EncodeSettings, EvalOptions, IndexSettings, MldrSetting

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
    add_colbert_library(p)
    add_fields(p, EvalOptions, "eval")
    add_fields(p, IndexSettings, "index", group="index backend",
               skip=tuple(f.name for f in dataclasses.fields(EncodeSettings)) + ("shard_size", "keep_shards"))
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.cli.fields import from_args
    from embedkit.cli.options import colbert_library
    from embedkit.config import EvalOptions, IndexSettings
    from embedkit.index.registry import check_available

    options = dataclasses.replace(from_args(args, EvalOptions, "eval"), colbert_library=colbert_library(args))
    index = from_args(args, IndexSettings, "index", base={k: getattr(options, k)
                                                          for k in ("batch_size", "max_length", "truncate_dim")})
    check_available(index.backend)
    from embedkit.evaluate.inputs import check_eval_paths

    check_eval_paths(args.model, args.data, args.output, args.run_file, args.mteb_results, args.index_dir,
                     benchmark_dir=args.output_dir if args.benchmark else None)
    if args.benchmark:
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
    from embedkit.evaluate.runner import evaluate

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
