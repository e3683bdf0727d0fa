"""The examples in embedkit's docstrings run as tests: pytest collects embedkit/ with --doctest-modules
(pyproject.toml). These tests keep it so: the option stays on, and no example sits where doctest would not
find it (a docstring of a nested function, an example without its blank line before, a comment)."""

import doctest
import importlib
from pathlib import Path

import pytest

import embedkit

PACKAGE = Path(embedkit.__file__).parent


def _module_name(path: Path) -> str:
    return ".".join(("embedkit", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def _example_lines(path: Path) -> int:
    return sum(line.lstrip().startswith(">>> ") for line in path.read_text(encoding="utf-8").splitlines())


WITH_EXAMPLES = sorted(_module_name(p) for p in PACKAGE.rglob("*.py") if _example_lines(p))


def test_embedkit_docstrings_are_collected(request):
    assert request.config.getoption("doctestmodules")
    assert "embedkit" in request.config.getini("testpaths")
    assert len(WITH_EXAMPLES) >= 9  # config, cli.fields, metrics, benchmarks, settings, maxsim, packing, fusion, mining


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_every_example_is_one_doctest_finds(name):
    module = importlib.import_module(name)
    found = sum(len(test.examples) for test in doctest.DocTestFinder().find(module))
    assert found == _example_lines(Path(module.__file__)), f"{name}: an example doctest does not see"
