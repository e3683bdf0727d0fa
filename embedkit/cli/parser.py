"""The parser of every sub-command: each module of :data:`COMMANDS` adds its own sub-parser, flags and
handler; this module only orders them under ``embedkit`` and its ``-v``."""

from __future__ import annotations

import argparse
import sys
import typing
from types import ModuleType


class Parser(argparse.ArgumentParser):
    """argparse with embedkit's one error line: ``embedkit: error: search: argument -k: ...`` (after the usage),
    exit code 2; sub-command parsers are of this class too."""

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        command = self.prog.removeprefix("embedkit").strip()
        self.exit(2, f"embedkit: error: {command + ': ' if command else ''}{message}\n")


def commands() -> tuple[ModuleType, ...]:
    """The sub-command modules, in the order ``embedkit --help`` lists them."""
    from embedkit.cli import benchmarks, eval, export, index, mine, quickstart, report, run, search, serve, sweep, train

    return (run, train, index, search, serve, eval, export, quickstart, benchmarks, report, mine, sweep)


def build_parser() -> argparse.ArgumentParser:
    """``embedkit`` and its sub-commands; each sub-parser's ``func`` default is its handler."""
    from embedkit.cli.helptext import DESCRIPTION

    parser = Parser(prog="embedkit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Debug logging, including the dependencies' load reports, warnings and the trainer's "
                             "log lines.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands():
        module.add_parser(sub)
    return parser
