"""``embedkit mine``: hard negatives added to (query, positive) data; prints what was written."""

from __future__ import annotations

import argparse

from embedkit.cli.helptext import command


def add_parser(sub: argparse._SubParsersAction) -> None:
    from embedkit.cli.fields import add_fields
    from embedkit.cli.options import count
    from embedkit.config import MiningOptions

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
    p.add_argument("--max-samples", type=count, default=None, metavar="INT", help="Mine for at most this many rows.")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.cli.fields import from_args
    from embedkit.config import ColumnsConfig, MiningOptions
    from embedkit.train.mining import mine

    report = mine(args.data, args.output, args.model, from_args(args, MiningOptions, "mine"),
                  columns=ColumnsConfig(query=args.query_column, positive=args.positive_column),
                  subset=args.subset, split=args.split, max_samples=args.max_samples)
    print(f"wrote {report.rows_out} rows with {report.num_negatives} negatives each to {report.output} "
          f"({report.dropped} of {report.rows_in} rows dropped: too few valid candidates)")
    return 0
