"""The packed package is used from outside through its public names only (``embedkit.models.packed``), and
exports nothing that nobody outside uses. Imports are read from the source, as tests/test_layers.py does."""

from __future__ import annotations

import ast
from pathlib import Path

import embedkit
import embedkit.models.packed as packed
from tests.test_layers import imported_modules, module_name

PACKAGE = Path(embedkit.__file__).resolve().parent
ROOT = PACKAGE.parent
INSIDE = PACKAGE / "models" / "packed"
OWN_TESTS = ROOT / "tests" / "models" / "packed"
PUBLIC = "embedkit.models.packed"


def _outside_sources() -> list[Path]:
    """embedkit's modules outside the package, the eval scripts and the tests of everything else."""
    found = [p for p in PACKAGE.rglob("*.py") if INSIDE not in p.parents]
    for folder in ("eval", "tests"):
        found += [p for p in (ROOT / folder).rglob("*.py") if OWN_TESTS not in p.parents and p.parent != OWN_TESTS]
    return sorted(found)


def _module(path: Path) -> str:
    return module_name(path) if PACKAGE in path.parents else ".".join(path.relative_to(ROOT).with_suffix("").parts)


def test_nothing_outside_imports_a_private_module():
    private = []
    for path in _outside_sources():
        for line, target in imported_modules(path.read_text(encoding="utf-8"), _module(path),
                                             is_package=path.name == "__init__.py"):
            if target.startswith(PUBLIC + "."):
                private.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert private == [], "import these from embedkit.models.packed:\n" + "\n".join(private)


def _names_imported_from_the_package() -> set[str]:
    names = set()
    for path in _outside_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == PUBLIC:
                names |= {alias.name for alias in node.names}
    return names


def test_the_public_surface_is_what_outside_code_uses():
    used = _names_imported_from_the_package()
    assert set(packed.__all__) == used, (f"exported, unused outside: {sorted(set(packed.__all__) - used)}; "
                                         f"used, not exported: {sorted(used - set(packed.__all__))}")
    assert all(hasattr(packed, name) for name in packed.__all__)


def test_private_module_imports_are_found():
    source = "from embedkit.models.packed.swap import enable_packed\nimport embedkit.models.packed.host\n"
    assert [t for _, t in imported_modules(source, "embedkit.models.dense")] == [
        "embedkit.models.packed.swap", "embedkit.models.packed.host"]
