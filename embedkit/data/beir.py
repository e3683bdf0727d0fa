"""BEIR-format folders: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedkit.data.corpus import Corpus
from embedkit.data.records import iter_jsonl, iter_tsv, require_fields
from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]

# Above this share of judged ids missing from the corpus, the qrels and the corpus do not belong
# together (a wrong folder, a truncated download); below it, missing ids are a known quirk of the
# published data (ArguAna judges a few ids its corpus lacks) and are kept, as BEIR and MTEB keep them.
MOSTLY_MISSING = 0.5


@dataclass
class BeirData:
    """Queries and qrels in memory; the corpus stays a stream."""

    folder: Path
    corpus: Corpus
    queries: dict[str, str]
    qrels: Qrels
    split: str


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        row = require_fields(obj, where, {"id": ("_id", "id", "query_id", "query-id"), "text": ("text", "query")})
        qid = str(row["id"])
        if qid in queries:
            raise EmbedkitError(f"{where}: duplicate query id {qid!r}")
        queries[qid] = str(row["text"] or "").strip()
    return queries


def read_qrels(path: Path) -> Qrels:
    """qrels TSV (query-id, corpus-id, score), with or without the BEIR header line."""
    qrels: Qrels = {}
    for lineno, row in iter_tsv(path):
        if lineno == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        if len(row) == 4:  # TREC qrels: qid, iteration, docid, relevance
            row = [row[0], row[2], row[3]]
        if len(row) != 3:
            raise EmbedkitError(f"{path}:{lineno}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                                f"got {len(row)}")
        qid, did, score = (cell.strip() for cell in row)
        try:
            relevance = int(float(score))
        except ValueError:
            raise EmbedkitError(f"{path}:{lineno}: relevance score {score!r} is not a number") from None
        qrels.setdefault(qid, {})[did] = relevance
    return qrels


def _find(folder: Path, stem: str) -> Path:
    for suffix in (".jsonl", ".jsonl.gz"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise EmbedkitError(f"{folder}: no {stem}.jsonl (expected a BEIR-format folder: corpus.jsonl, queries.jsonl, "
                        "qrels/<split>.tsv)")


def load_beir(folder: str | Path, split: str = "test", titles: bool = True) -> BeirData:
    """Read a BEIR folder; queries are restricted to those judged in ``split`` (as BEIR does).

    Qrels naming a query that ``queries.jsonl`` lacks are refused. Queries that are empty are
    refused too: a retriever cannot be scored on them. ``titles=False`` reads documents as their text
    alone (CoIR's convention), else title and text joined.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "a file; a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) is expected here" \
            if folder.exists() else "no such local path (a BEIR folder is expected here)"
        raise EmbedkitError(f"{folder}: {what}")
    queries_path = _find(folder, "queries")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise EmbedkitError(f"{qrels_path} not found; qrels splits here: {', '.join(available) or 'none'}")
    all_queries = read_queries(queries_path)
    qrels = read_qrels(qrels_path)
    unknown = [qid for qid in qrels if qid not in all_queries]
    if unknown:
        raise EmbedkitError(f"{qrels_path}: {len(unknown)} query ids are not in {queries_path.name} "
                            f"(first: {unknown[0]!r})")
    queries = {qid: all_queries[qid] for qid in qrels}
    empty = [qid for qid, text in queries.items() if not text]
    if empty:
        raise EmbedkitError(f"{queries_path}: {len(empty)} judged queries have empty text (first: {empty[0]!r})")
    if not queries:
        raise EmbedkitError(f"{qrels_path}: no judged queries")
    # Benchmark corpora keep their empty documents (encoded as empty text), as BEIR and MTEB do.
    return BeirData(folder, Corpus(str(folder), skip_empty=False, titles=titles), queries, qrels, split)


@dataclass(frozen=True)
class JudgedCoverage:
    """How many judged document ids the corpus holds; found by one pass over the corpus."""

    judged: int                 # distinct document ids in the qrels
    missing: tuple[str, ...]    # judged ids the corpus lacks, sorted
    documents: int              # documents in the corpus (empty ones included)


def check_judged_documents(data: BeirData) -> JudgedCoverage:
    """Read the corpus once, before any encoding, and compare its ids with the judged ones.

    Repeated document ids are refused (by the corpus reader). Judged ids missing from the corpus
    are kept in the qrels, as BEIR and MTEB keep them: they count in the ideal DCG and can never be
    retrieved. Their count and a few examples are logged. Only when most judged ids are missing
    (files that do not belong together) is it an error, naming the qrels file.
    """
    judged = {did for docs in data.qrels.values() for did in docs}
    remaining = set(judged)
    documents = 0
    for doc_id, _ in data.corpus:
        documents += 1
        remaining.discard(doc_id)
    missing = tuple(sorted(remaining))
    qrels_path = data.folder / "qrels" / f"{data.split}.tsv"
    if judged and len(missing) > MOSTLY_MISSING * len(judged):
        raise EmbedkitError(f"{qrels_path}: {len(missing)} of the {len(judged)} judged document ids are not in "
                            f"the corpus of {data.folder} (first: {missing[0]!r}); the qrels and the corpus do "
                            "not seem to belong together")
    if missing:
        logger.warning("%s: %d of %d judged document ids are not in the corpus (e.g. %s); kept as unretrievable "
                       "judgements, as BEIR and MTEB do", qrels_path, len(missing), len(judged),
                       ", ".join(repr(m) for m in missing[:3]))
    return JudgedCoverage(len(judged), missing, documents)


class BeirWriter:
    """Streams corpus, queries and qrels into a BEIR folder, counting what it writes (downloaded benchmarks, the
    quickstart's code search and the eval scripts' sets are all written through it)."""

    def __init__(self, folder: Path, split: str = "test"):
        self.folder, self.split = folder, split
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        self.counts = {"documents": 0, "queries": 0, "qrels": 0}

    def write_corpus(self, rows: Iterable[tuple[str, str, str]]) -> None:
        with open(self.folder / "corpus.jsonl", "w", encoding="utf-8") as out:
            for doc_id, title, text in rows:
                out.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
                self.counts["documents"] += 1

    def write_queries(self, rows: Iterable[tuple[str, str]]) -> None:
        with open(self.folder / "queries.jsonl", "w", encoding="utf-8") as out:
            for qid, text in rows:
                out.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
                self.counts["queries"] += 1

    def write_qrels(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """As BEIR writes them: csv, tab-separated, ``QUOTE_MINIMAL`` (an id with ``"`` is quoted)."""
        with open(self.folder / "qrels" / f"{self.split}.tsv", "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            writer.writerow(["query-id", "corpus-id", "score"])
            for qid, doc_id, score in rows:
                writer.writerow([_clean_id(qid), _clean_id(doc_id), score])
                self.counts["qrels"] += 1


def _clean_id(value: Any) -> str:
    text = str(value)
    if "\t" in text or "\n" in text:
        raise EmbedkitError(f"identifier {text!r} contains a tab or newline and cannot go in a qrels TSV")
    return text


def write_one_relevant(folder: Path, documents: Iterable[tuple[str, str]],
                       queries: Sequence[tuple[str, str, str]], split: str = "test") -> Path:
    """A BEIR folder in which each query has one relevant document (titles empty, every qrel score 1).

    ``documents``: (document id, text); ``queries``: (query id, text, id of its relevant document).
    """
    writer = BeirWriter(folder, split)
    writer.write_corpus((doc_id, "", text) for doc_id, text in documents)
    writer.write_queries((qid, text) for qid, text, _ in queries)
    writer.write_qrels((qid, doc_id, 1) for qid, _, doc_id in queries)
    return folder
