"""The offline data sets the scripts measure on, built from Python source on this machine (no download):

- :func:`build_folder`: code search, stdlib functions judged (query = docstring summary, document = the code
  without its docstring) and site-packages functions as unjudged distractors up to ``num_docs``;
- :func:`code_folder`: the quickstart's code-search folder, as ``embedkit quickstart`` builds it;
- :func:`text_folder`: prose, stdlib docstrings (query = summary line, document = the rest of the docstring);
- :func:`write_corpus` and :func:`flat_index`: a JSONL corpus, and a FAISS flat index of one, built once.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path


def build_folder(folder: Path, num_docs: int, num_queries: int) -> Path:
    """A code-search BEIR folder of ``num_docs`` documents and up to ``num_queries`` queries (one relevant each)."""
    from embedkit.data.beir import write_one_relevant
    from embedkit.data.code_corpus import iter_code_pairs, site_packages_root, stdlib_root

    judged = list(iter_code_pairs(stdlib_root(), limit=num_docs))
    seen = {p.query.lower() for p in judged}
    extra = [p for p in iter_code_pairs(site_packages_root(), limit=max(0, num_docs - len(judged)) * 2)
             if p.query.lower() not in seen][: max(0, num_docs - len(judged))]
    queries = judged[::max(1, len(judged) // num_queries)][:num_queries]
    return write_one_relevant(folder, ((p.id, p.code) for p in judged + extra),
                              [(f"q-{p.id}", p.query, p.id) for p in queries])


def code_folder(work: Path, docs: int, queries: int) -> Path:
    from embedkit.quickstart import prepare_data

    return prepare_data(work, train_size=1, eval_size=docs, num_queries=queries)[1]


def docstring_pairs(limit: int) -> list[tuple[str, str, str]]:
    """(id, summary, rest of the docstring) for stdlib functions whose docstring has a body of prose."""
    from embedkit.data.code_corpus import stdlib_root

    root, seen, out = stdlib_root(), set(), []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in ("site-packages", "test", "tests", "idlelib") for part in rel.parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            doc = ast.get_docstring(node, clean=True)
            if not doc or "\n\n" not in doc:
                continue
            head, body = doc.split("\n\n", 1)
            summary, body = " ".join(head.split()), " ".join(body.split())
            if len(summary.split()) < 4 or len(body) < 80 or summary.lower() in seen:
                continue
            seen.add(summary.lower())
            out.append((hashlib.sha1(f"{rel}:{summary}".encode()).hexdigest()[:12], summary, body[:2000]))
            if len(out) >= limit:
                return out
    return out


def text_folder(work: Path, docs: int, queries: int) -> Path:
    """``work``/stdlib-docstrings: ``docs`` docstring bodies, up to ``queries`` summary lines (one relevant each)."""
    from embedkit.data.beir import write_one_relevant

    pairs = docstring_pairs(docs)
    judged = pairs[::max(1, len(pairs) // queries)][:queries]
    return write_one_relevant(work / "stdlib-docstrings", ((i, body) for i, _, body in pairs),
                              [(f"q-{i}", q, i) for i, q, _ in judged])


def write_corpus(path: Path, documents: Iterable[tuple[str, str]]) -> Path:
    """A JSONL corpus of (id, text) documents, one ``{"_id", "text"}`` object a line, streamed."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": doc_id, "text": text}) + "\n" for doc_id, text in documents)
    return path


def flat_index(folder: Path, documents: list[tuple[str, str]], model: str, progress: bool = True,
               precision: str = "fp32") -> Path:
    """A FAISS flat index of (id, text) documents at ``folder`` (its corpus JSONL beside it), reused when built;
    ``precision``: the one it records (its queries are encoded in it)."""
    from embedkit.config import IndexSettings
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index

    if not (folder / "embedkit-index.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        corpus = write_corpus(folder.with_name(f"{folder.name}-corpus.jsonl"), documents)
        build_index(model, Corpus(str(corpus)), folder, IndexSettings(backend="flat", precision=precision),
                    overwrite=True, progress=progress)
    return folder
