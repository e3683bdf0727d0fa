"""``embedkit quickstart``: the offline demo (:mod:`embedkit.quickstart` does the work)."""

from __future__ import annotations

import argparse

from embedkit.cli.helptext import command


def add_parser(sub: argparse._SubParsersAction) -> None:
    from embedkit.cli.options import count

    p = command(sub, "quickstart", "offline demo: fine-tune MiniLM on code search and compare with BM25")
    p.add_argument("--workdir", default="runs/quickstart", metavar="DIR",
                   help="Where the data, models, indexes and reports go (default: runs/quickstart).")
    p.add_argument("--train-size", type=count, default=2000, metavar="INT",
                   help="Training pairs extracted from the installed packages (default: 2000).")
    p.add_argument("--eval-size", type=count, default=2000, metavar="INT",
                   help="Python stdlib functions in the scored corpus (default: 2000; 500 of them are queried).")
    p.add_argument("--max-steps", type=count, default=None, metavar="INT",
                   help="Stop training after this many updates (default: the recipes' own).")
    p.add_argument("--no-colbert", action="store_true", help="Run the dense recipe only, not the ColBERT one.")
    p.add_argument("--sparse", action="store_true",
                   help="Also train the sparse (SPLADE) recipe on the same pairs and add its row and a hybrid (RRF "
                        "with the dense model) row. Off by default: MiniLM ships no MLM head transform, so a few "
                        "steps from it give a weak sparse model.")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.quickstart import run_quickstart

    run_quickstart(workdir=args.workdir, train_size=args.train_size, eval_size=args.eval_size,
                   max_steps=args.max_steps, colbert=not args.no_colbert, sparse=args.sparse)
    return 0
