"""Imports run downward only, in the order DESIGN.md draws: errors/quiet → config/artifacts/distributed → data →
models → index → retrieve → evaluate, serve → train → pipeline → quickstart → cli.

Every ``import`` of an ``embedkit`` module is read from the source (``ast``): module-level ones, those inside
functions and ``if TYPE_CHECKING:`` blocks, absolute and relative, and the ``"module:attribute"`` strings
registries import on first use. A module may import its own layer and the layers before it, never one after it.
A new top-level module has no layer until it is placed in ``LAYERS``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import embedkit

PACKAGE = Path(embedkit.__file__).resolve().parent

# Top-level modules and packages of embedkit, by layer; a layer may import itself and the layers above it here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors", "quiet"),
    ("config", "artifacts", "distributed"),
    ("data",),
    ("models",),
    ("index",),
    ("retrieve",),
    ("evaluate", "serve"),
    ("train",),
    ("pipeline",),
    ("quickstart",),
    ("cli", "__main__"),
)
LAYER_OF = {name: number for number, names in enumerate(LAYERS) for name in names}
# How registries name what they import on first use: "embedkit.index.faiss_index:FLAT".
LAZY = re.compile(r"embedkit(\.\w+)+:\w+")


def _layer_name(number: int) -> str:
    return "/".join(LAYERS[number])


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """``embedkit.index.build`` for ``<root>/index/build.py``; ``embedkit.data`` for its ``__init__.py``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([root.name, *parts])


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, wherever it stands (``from embedkit import
    config`` imports ``embedkit.config``)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "embedkit":  # ``from embedkit import config``: the names are the modules
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY.fullmatch(node.value):
            found.append((node.lineno, node.value.split(":")[0]))  # a registry's "module:attribute", imported later
    return found


def _top_level(module: str) -> str | None:
    """The top-level part of embedkit a module belongs to (``index`` for ``embedkit.index.build``), ``__init__``
    for the package itself; None for another package."""
    parts = module.split(".")
    if parts[0] != "embedkit":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def upward_imports(source: str, module: str, where: str, is_package: bool = False) -> list[str]:
    """What is wrong with the imports of ``module`` (its ``source``, shown as ``where``): each import of a later
    layer, and a module of embedkit that has no layer."""
    problems = []
    own = _top_level(module)
    if own not in LAYER_OF:
        return [f"{where}: embedkit.{own} has no layer: place it in tests/test_layers.py LAYERS"]
    for line, target in imported_modules(source, module, is_package):
        top = _top_level(target)
        if top is None:
            continue
        if top not in LAYER_OF and target.count(".") == 1 and not _is_module(top):
            top = "__init__"  # ``from embedkit import __version__``: an attribute of the package itself
        if top not in LAYER_OF:
            problems.append(f"{where}:{line}: imports {target}, of a part of embedkit with no layer")
            continue
        if LAYER_OF[top] > LAYER_OF[own]:
            problems.append(f"{where}:{line}: {module} ({_layer_name(LAYER_OF[own])}) imports {target} "
                            f"({_layer_name(LAYER_OF[top])}), a later layer")
    return problems


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_module_has_a_layer():
    tops = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in _modules()}
    assert tops - set(LAYER_OF) == set(), "place each new top-level module in LAYERS"
    assert set(LAYER_OF) - tops == set(), "LAYERS names a module that is gone"


def test_imports_run_downward_only():
    problems = []
    for path in _modules():
        where = f"embedkit/{path.relative_to(PACKAGE).as_posix()}"
        problems += upward_imports(path.read_text(encoding="utf-8"), module_name(path), where,
                                   is_package=path.name == "__init__.py")
    assert problems == [], "\n".join(problems)


# The three upward imports the layering once had, each in a form the check must see through.
@pytest.mark.parametrize("module, source, later", [
    ("embedkit.config", "def validate(recipe):\n    from embedkit.train.losses import LOSSES\n", "train"),
    ("embedkit.data.benchmark_sources",
     "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from embedkit.evaluate.benchmarks import Benchmark\n",
     "evaluate/serve"),
    ("embedkit.retrieve.evaluation", "from ..evaluate.metrics import evaluate_run\n", "evaluate/serve"),
    ("embedkit.retrieve.evaluation", "import embedkit.evaluate.metrics as metrics\n", "evaluate/serve"),
    ("embedkit.data", "from ..evaluate import benchmarks\n", "evaluate/serve"),
    ("embedkit.config", 'LOSSES = {"mnrl": "embedkit.train.losses:mnrl"}\n', "train"),
])
def test_an_upward_import_is_reported_with_file_line_and_both_layers(module, source, later):
    problems = upward_imports(source, module, "some/file.py", is_package=module == "embedkit.data")
    assert len(problems) == 1
    line = source.count("\n")  # the import is on the last line
    assert problems[0].startswith(f"some/file.py:{line}: ") and problems[0].endswith(f"({later}), a later layer")
    assert f"{module} ({_layer_name(LAYER_OF[module.split('.')[1]])})" in problems[0]


def test_downward_and_same_layer_imports_pass():
    source = ("from embedkit.errors import EmbedkitError\nfrom . import beir\nfrom .hub import hub_offline\n"
              "from embedkit import __version__\nimport numpy\n")
    assert upward_imports(source, "embedkit.data.corpus", "x.py") == []
    assert upward_imports("from embedkit.serve.app import create_app\n", "embedkit.evaluate.runner", "x.py") == []


def test_a_module_without_a_layer_fails():
    assert upward_imports("", "embedkit.helpers", "embedkit/helpers.py") == [
        "embedkit/helpers.py: embedkit.helpers has no layer: place it in tests/test_layers.py LAYERS"]
    problems = upward_imports("from embedkit.helpers.text import clean\n", "embedkit.data.corpus", "x.py")
    assert problems == ["x.py:1: imports embedkit.helpers.text, of a part of embedkit with no layer"]
