"""``embedkit run``: a recipe's stages in order (train → index → eval → report); prints the stage table."""

from __future__ import annotations

import argparse

from embedkit.cli.helptext import command
from embedkit.cli.options import OVERRIDES, RECIPE_HELP


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "run", "run a recipe's stages: train → index → eval → report")
    p.add_argument("recipe", help=RECIPE_HELP)
    p.add_argument("--stages", default=None, metavar="LIST",
                   help="Comma-separated stages to run, of train,index,eval,report (default: all, in that order).")
    p.add_argument("--set", **OVERRIDES)
    p.add_argument("--overwrite", action="store_true",
                   help="Run every stage again, replacing what exists, including a model trained with other "
                        "settings.")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.pipeline import parse_stages, run_pipeline
    from embedkit.train.recipes import load_recipe

    recipe = load_recipe(args.recipe, args.set or [])
    stages = parse_stages(args.stages)
    result = run_pipeline(recipe, stages, overwrite=args.overwrite)
    print(result.table())
    return 0
