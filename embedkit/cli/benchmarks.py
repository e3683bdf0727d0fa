"""``embedkit benchmarks``: prints the table of named benchmarks."""

from __future__ import annotations

import argparse

from embedkit.cli.helptext import command


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "benchmarks", "list the named benchmarks")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from embedkit.data.benchmarks import list_benchmarks_table

    print(list_benchmarks_table())
    return 0
