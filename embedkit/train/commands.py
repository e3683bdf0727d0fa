"""`embedkit mine` and `embedkit sweep`: thin CLI functions over embedkit.train.mining / .sweep."""

from __future__ import annotations

import argparse


def _mine(args: argparse.Namespace) -> int:
    from embedkit.config import ColumnsConfig
    from embedkit.train.mining import MiningOptions, mine

    options = MiningOptions(num_negatives=args.num_negatives, range_min=args.range_min, range_max=args.range_max,
                            relative_margin=args.margin, absolute_margin=args.absolute_margin,
                            max_score=args.max_score, min_score=args.min_score, sampling=args.sampling,
                            cross_encoder=args.cross_encoder, batch_size=args.batch_size,
                            use_faiss=not args.no_faiss, seed=args.seed)
    report = mine(args.data, args.output, args.model, options,
                  columns=ColumnsConfig(query=args.query_column, positive=args.positive_column),
                  subset=args.subset, split=args.split, max_samples=args.max_samples)
    print(f"wrote {report.rows_out} rows with {report.num_negatives} negatives each to {report.output} "
          f"({report.dropped} of {report.rows_in} rows dropped: too few valid candidates)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from embedkit.train.sweep import run_sweep

    only = [int(i) for part in args.only_index for i in part.split(",") if i.strip()] if args.only_index else None
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


def register(sub) -> None:
    p = sub.add_parser("mine", help="add hard negatives to (query, positive) data, from a dense model or BM25")
    p.add_argument("--model", required=True, help="sentence-transformers model folder / hub id, or 'bm25'")
    p.add_argument("--data", required=True, help="(query, positive) rows: JSONL/Parquet/CSV file or folder, hub id")
    p.add_argument("--output", required=True, help="JSONL with query, positive, negative_1..n")
    p.add_argument("--num-negatives", type=int, default=3, help="negatives written per row (default: 3)")
    p.add_argument("--range-min", type=int, default=0, help="skip this many top candidates (likely positives)")
    p.add_argument("--range-max", type=int, default=50, help="consider candidates up to this rank")
    p.add_argument("--margin", type=float, default=None,
                   help="relative margin: a negative scores at most (1 - margin) x the positive (0.05 = 95%%)")
    p.add_argument("--absolute-margin", type=float, default=None,
                   help="a negative scores at most positive - margin")
    p.add_argument("--max-score", type=float, default=None, help="drop candidates scoring above this")
    p.add_argument("--min-score", type=float, default=None, help="drop candidates scoring below this")
    p.add_argument("--sampling", choices=["top", "random"], default="top",
                   help="top: the best-scoring valid candidates; random: any valid ones (default: top)")
    p.add_argument("--cross-encoder", default=None, help="rescore candidates with this CrossEncoder first")
    p.add_argument("--batch-size", type=int, default=32, help="encoding batch size (default: 32)")
    p.add_argument("--no-faiss", action="store_true", help="dense: exact similarity matrix instead of FAISS")
    p.add_argument("--query-column", default="query", help="column holding the query (default: query)")
    p.add_argument("--positive-column", default="positive",
                   help="column holding the relevant document (default: positive)")
    p.add_argument("--subset", default=None, help="hub dataset configuration")
    p.add_argument("--split", default="train", help="split to read (default: train)")
    p.add_argument("--max-samples", type=int, default=None, help="mine for at most this many rows")
    p.add_argument("--seed", type=int, default=42, help="seed of random sampling (default: 42)")
    p.set_defaults(func=_mine)

    p = sub.add_parser("sweep", help="train a recipe over a grid of settings and keep the best by mean nDCG@10")
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
