"""A real CodeSearchNet-style corpus built offline: Python functions with docstrings.

query = the docstring's summary line, document = the function's code without its docstring.
The stdlib and site-packages give two disjoint sources (train on one, evaluate on the other).
"""

from __future__ import annotations

import ast
import hashlib
import logging
import sysconfig
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodePair:
    id: str
    query: str
    code: str


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def site_packages_root() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _summary(docstring: str) -> str:
    first_paragraph = docstring.strip().split("\n\n")[0]
    return " ".join(first_paragraph.split())


def _code_without_docstring(source_lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    doc = node.body[0]
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    lines = source_lines[start:doc.lineno - 1] + source_lines[doc.end_lineno:node.end_lineno]
    return textwrap.dedent("".join(lines)).rstrip()


def functions_in_file(path: Path, min_query_words: int = 4, min_code_lines: int = 3,
                      max_code_chars: int = 4000) -> Iterator[tuple[str, str]]:
    """(summary, code) for each documented function or method in one Python file."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return
    lines = source.splitlines(keepends=True)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = ast.get_docstring(node, clean=True)
        if not docstring or node.name.startswith("test"):
            continue
        query = _summary(docstring)
        code = _code_without_docstring(lines, node)
        if len(query.split()) < min_query_words or len(query) > 300:
            continue
        if code.count("\n") + 1 < min_code_lines or len(code) > max_code_chars:
            continue
        yield query, code


def iter_code_pairs(root: Path, limit: int | None = None, exclude: tuple[str, ...] = ("site-packages", "test",
                                                                                          "tests", "idlelib")
                    ) -> Iterator[CodePair]:
    """Documented functions under ``root`` in a stable order, one per distinct summary."""
    seen: set[str] = set()
    count = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in exclude for part in rel.parts[:-1]):
            continue
        for query, code in functions_in_file(path):
            key = query.lower()
            if key in seen:
                continue
            seen.add(key)
            pair_id = hashlib.sha1(f"{rel}:{query}".encode()).hexdigest()[:12]
            yield CodePair(pair_id, query, code)
            count += 1
            if limit is not None and count >= limit:
                return
