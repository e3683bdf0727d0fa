"""``embedkit sweep``: train a recipe over a grid of settings; prints the table and the winner."""

from __future__ import annotations

import argparse

from embedkit.cli.helptext import command
from embedkit.errors import EmbedkitError


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
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
