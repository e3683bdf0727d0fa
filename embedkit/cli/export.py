"""``embedkit export``: a ColBERT model written in another library's format; prints where it went."""

from __future__ import annotations

import argparse

from embedkit.cli.helptext import command


def add_parser(sub: argparse._SubParsersAction) -> None:
    from embedkit.models.colbert.export import EXPORTS

    p = command(sub, "export", "write a ColBERT model in another library's format (PyLate)")
    p.add_argument("model", help="A MultiVectorEncoder model folder.")
    p.add_argument("output", help="The folder to write (it must not exist, unless --overwrite).")
    p.add_argument("--format", choices=list(EXPORTS), default=next(iter(EXPORTS)),
                   help="The format to write: pylate = pylate.models.ColBERT (PyLate 1.6) (default: pylate).")
    p.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.models.colbert.export import export_model

    path = export_model(args.model, args.output, args.format, overwrite=args.overwrite)
    print(f"{args.format} model written to {path}")
    return 0
