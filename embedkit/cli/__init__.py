"""The ``embedkit`` command: one module per sub-command, each holding its flags next to its handler.

A handler parses, calls the library and prints: results on stdout (tables, JSON with ``--json``), everything else
(progress, where artefacts went) on stderr. The shared pieces: :mod:`~embedkit.cli.fields` (flags generated from
the recipe's dataclass fields), :mod:`~embedkit.cli.options` (flag types and the flags several commands read the
same way), :mod:`~embedkit.cli.helptext` (descriptions and examples), :mod:`~embedkit.cli.parser` (the parser of
all sub-commands) and :mod:`~embedkit.cli.entry` (``main``: a user's error is one line and exit code 2).
"""

from embedkit.cli.entry import main
from embedkit.cli.parser import build_parser

__all__ = ["build_parser", "main"]
