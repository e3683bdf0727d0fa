"""No sub-command's flags are defined away from its handler: every flag of ``embedkit COMMAND`` is added by the
module that holds COMMAND's handler, or generated from a recipe field by :mod:`embedkit.cli.fields` (which a
shared helper may call: the flag is then the field's, its help and type written once)."""

from __future__ import annotations

import argparse
import sys

import pytest

from embedkit.cli import build_parser
from embedkit.cli.parser import commands

# Where a flag may come from besides the handler's own module: flags generated from a recipe field, and argparse's
# own -h.
GENERATED = {"embedkit.cli.fields", "argparse"}


def _origins(monkeypatch, build=build_parser) -> tuple[argparse.ArgumentParser, dict[int, str]]:
    """The parser ``build`` makes, and the module whose code called ``add_argument`` for each action (by id)."""
    origins: dict[int, str] = {}
    original = argparse._ActionsContainer.add_argument

    def recording(self, *args, **kwargs):
        action = original(self, *args, **kwargs)
        origins[id(action)] = sys._getframe(1).f_globals["__name__"]
        return action

    monkeypatch.setattr(argparse._ActionsContainer, "add_argument", recording)
    return build(), origins


def _sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def misplaced_flags(parser: argparse.ArgumentParser, origins: dict[int, str]) -> list[str]:
    """``COMMAND FLAG: added in MODULE, its handler is in OTHER`` for every flag added away from its handler."""
    problems = []
    for name, sub in _sub_parsers(parser).items():
        home = sub.get_default("func").__module__
        for action in sub._actions:
            where = origins[id(action)]
            if where != home and where not in GENERATED:
                flag = action.option_strings[0] if action.option_strings else action.dest
                problems.append(f"{name} {flag}: added in {where}, its handler is in {home}")
    return problems


def test_every_flag_is_added_beside_its_handler(monkeypatch):
    parser, origins = _origins(monkeypatch)
    assert misplaced_flags(parser, origins) == []
    subs = _sub_parsers(parser)
    assert len(subs) == len(commands()) == 12
    for module in commands():  # one module per sub-command, holding its handler
        name = module.__name__.rsplit(".", 1)[1]
        assert subs[name].get_default("func") is module.handle, name


def _shared_flag(p: argparse.ArgumentParser) -> None:
    """A helper outside the handler's module that adds a flag by hand (what the check must catch)."""
    p.add_argument("--stray", help="a flag far from its handler")


def test_a_flag_added_by_a_helper_elsewhere_is_reported(monkeypatch):
    def build():
        parser = build_parser()
        _shared_flag(_sub_parsers(parser)["benchmarks"])
        return parser

    parser, origins = _origins(monkeypatch, build)
    assert misplaced_flags(parser, origins) == [
        f"benchmarks --stray: added in {__name__}, its handler is in embedkit.cli.benchmarks"]


@pytest.mark.parametrize("argv", [["run", "r.yaml"], ["search", "q", "--index-dir", "x"], ["benchmarks"]])
def test_python_dash_m_and_the_package_reach_the_same_main(argv):
    import embedkit.__main__
    import embedkit.cli.__main__
    from embedkit.cli import entry, main

    assert embedkit.__main__.main is embedkit.cli.__main__.main is main is entry.main
    assert build_parser().parse_args(argv).func.__module__.startswith("embedkit.cli.")
