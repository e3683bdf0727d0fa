"""``embedkit train``: fine-tune from a recipe into its output_dir; prints the model folder."""

from __future__ import annotations

import argparse
import logging

from embedkit.cli.helptext import command
from embedkit.cli.options import OVERRIDES, RECIPE_HELP
from embedkit.errors import EmbedkitError

logger = logging.getLogger("embedkit")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "train", "fine-tune a retriever from a YAML recipe")
    p.add_argument("recipe", help=RECIPE_HELP)
    p.add_argument("--set", **OVERRIDES)
    p.add_argument("--overwrite", action="store_true",
                   help="Train again and replace output_dir, even when it holds a model (of this or another recipe).")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="Keep the intermediate checkpoints in output_dir/checkpoints once training has finished.")
    p.add_argument("--dry-run", action="store_true", help="Print the resolved recipe and stop.")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.pipeline import check_inputs, refuse_retraining, trained_differences
    from embedkit.train.recipes import load_recipe
    from embedkit.train.run import train

    recipe = load_recipe(args.recipe, args.set or [])
    if args.dry_run:
        print(recipe.to_yaml(), end="")
        return 0
    check_inputs(recipe, ("train",))
    if not recipe.data.train:
        raise EmbedkitError(f"{args.recipe}: data.train is not set: there is nothing to train on")
    # "Already trained?": the same decision as the pipeline's train stage (skip when the same, refuse when not).
    changes = trained_differences(recipe)
    if changes == [] and not args.overwrite:
        logger.info("%s already holds the model this recipe trains (--overwrite trains it again)", recipe.output_dir)
        print(recipe.output_dir)
        return 0
    if changes and not args.overwrite:
        raise refuse_retraining(recipe, changes)
    path = train(recipe, overwrite=args.overwrite, keep_checkpoints=args.keep_checkpoints)
    logger.info("model saved to %s", path)
    print(path)
    return 0
