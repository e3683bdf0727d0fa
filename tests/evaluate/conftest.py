"""Replicas of every registered benchmark source, in its real layout, with the real data's quirks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import WORDS, write_hub_repo


def _replica_rows(name: str, n: int = 6) -> tuple[list[dict], list[dict], list[tuple[str, str, int]]]:
    """Documents about two words each, one query per document naming its two words."""
    docs = [{"_id": f"{name}-d{i}", "title": f"{WORDS[i]} note",
             "text": f"{name} text about {WORDS[i]} and {WORDS[i + 1]}"} for i in range(n)]
    queries = [{"_id": f"{name}-q{i}", "text": f"{WORDS[i]} {WORDS[i + 1]}"} for i in range(n)]
    qrels = [(f"{name}-q{i}", f"{name}-d{i}", 1) for i in range(n)]
    return docs, queries, qrels


def _beir_zip_files(prefix: str, name: str, split: str = "test", quirk: str | None = None) -> dict[str, str]:
    """One BEIR folder as the official zips hold it; qrels written as BEIR writes them (csv QUOTE_MINIMAL)."""
    import csv
    import io

    docs, queries, qrels = _replica_rows(name)
    if quirk == "missing-judged":   # ArguAna judges an id its corpus lacks (BEIR issues 101, 172)
        qrels.append((queries[0]["_id"], "test-free-speech-debate-yfsdfkhbwu-con03b", 1))
        # ArguAna's queries are corpus arguments too: a query whose id is a document id (a self-hit)
        docs.append({"_id": queries[1]["_id"], "title": "", "text": queries[1]["text"]})
    if quirk == "empty-docs":       # FiQA has documents with empty title and text (BEIR issue 158)
        docs += [{"_id": f"{name}-empty{i}", "title": "", "text": ""} for i in range(2)]
    if quirk == "quoted-id":        # an id holding a quote: BEIR's csv writer quotes it in the TSV
        docs[2]["_id"] = f'{name}-"d2"'
        qrels[2] = (qrels[2][0], docs[2]["_id"], 1)
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(["query-id", "corpus-id", "score"])
    writer.writerows(qrels)
    return {f"{prefix}/corpus.jsonl": "".join(json.dumps(d) + "\n" for d in docs),
            f"{prefix}/queries.jsonl": "".join(json.dumps(q) + "\n" for q in queries),
            f"{prefix}/qrels/{split}.tsv": out.getvalue()}


def _write_zip(path: Path, files: dict[str, str]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


def _write_mldr_repo(root: Path) -> Path:
    """Shitao/MLDR's raw files: mldr-v1.0-en/{test,corpus}.jsonl.gz (queries carry their positives)."""
    import gzip

    docs, queries, qrels = _replica_rows("mldr")
    (root / "mldr-v1.0-en").mkdir(parents=True)
    with gzip.open(root / "mldr-v1.0-en" / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"docid": d["_id"], "text": d["text"] * 40}) + "\n" for d in docs)
    with gzip.open(root / "mldr-v1.0-en" / "test.jsonl.gz", "wt", encoding="utf-8") as f:
        for q, (_, did, _) in zip(queries, qrels):
            f.write(json.dumps({"query_id": q["_id"], "query": q["text"], "negative_passages": [],
                                "positive_passages": [{"docid": did, "text": "..."}]}) + "\n")
    return root


def _coir_configs(prefix: str, name: str) -> dict[str, dict[str, dict[str, list]]]:
    """CoIR's MTEB layout: ``<prefix>corpus`` (documents with non-empty titles, which CoIR does not encode),
    ``<prefix>queries`` (every partition; the first query's id also names a train query, listed first),
    qrels per split."""
    docs, queries, qrels = _replica_rows(name)
    qrels_config = f"{prefix}qrels" if prefix else "default"
    repeated = {"_id": queries[0]["_id"], "partition": "train", "text": "a train query that reuses a test id"}
    return {
        f"{prefix}corpus": {"corpus": {"_id": [d["_id"] for d in docs], "title": [d["title"] for d in docs],
                                       "text": [d["text"] for d in docs]}},
        f"{prefix}queries": {"queries": {"_id": [repeated["_id"]] + [q["_id"] for q in queries] + [f"{name}-train-q"],
                                         "partition": ["train"] + ["test"] * len(queries) + ["train"],
                                         "text": [repeated["text"]] + [q["text"] for q in queries]
                                         + ["unjudged train query"]}},
        qrels_config: {"test": {"query-id": [q for q, _, _ in qrels], "corpus-id": [d for _, d, _ in qrels],
                                "score": [s for *_, s in qrels]}},
    }


@pytest.fixture(scope="session")
def benchmark_replicas(tmp_path_factory) -> dict:
    """A registry whose every entry points at a local replica of its real source.

    BEIR zips (ArguAna judging an id its corpus lacks and holding a self-hit, FiQA with empty
    documents, NFCorpus with a quoted id, MS MARCO scored on dev, CQADupStack's nested forums),
    MLDR's raw files, CoIR's parquet configs for CodeSearchNet and StackOverflow-QA. Patch it in
    with ``monkeypatch.setattr("embedkit.data.benchmarks.BENCHMARKS", benchmark_replicas)``.
    """
    import dataclasses

    from embedkit.data.benchmarks import BENCHMARKS, CQADUPSTACK_FORUMS, CSN_LANGUAGES

    root = tmp_path_factory.mktemp("benchmark-sources")
    quirks = {"beir/arguana": "missing-judged", "beir/fiqa": "empty-docs", "beir/nfcorpus": "quoted-id"}
    sources: dict[str, str] = {}
    for name, entry in BENCHMARKS.items():
        if entry.loader == "beir-zip" and not name.startswith("beir/cqadupstack"):
            zip_name = name.split("/", 1)[1]
            files = _beir_zip_files(zip_name, zip_name, entry.split, quirks.get(name))
            sources[name] = _write_zip(root / f"{zip_name}.zip", files).as_uri()
    cqa: dict[str, str] = {}
    for forum in CQADUPSTACK_FORUMS:
        cqa.update(_beir_zip_files(f"cqadupstack/{forum}", f"cqa-{forum}"))
    cqa_uri = _write_zip(root / "cqadupstack.zip", cqa).as_uri()
    sources.update({name: cqa_uri for name in BENCHMARKS if name.startswith("beir/cqadupstack")})
    sources["mldr"] = str(_write_mldr_repo(root / "MLDR"))
    csn: dict[str, dict[str, dict[str, list]]] = {}
    for lang in CSN_LANGUAGES:
        csn.update(_coir_configs(f"{lang}-", f"csn-{lang}"))
    csn_repo = str(write_hub_repo(root / "CodeSearchNet", csn))
    sources.update({f"csn/{lang}": csn_repo for lang in CSN_LANGUAGES})
    sources["coir/stackoverflow-qa"] = str(write_hub_repo(root / "stackoverflow-qa", _coir_configs("", "sqa")))
    return {name: dataclasses.replace(entry, source=sources[name]) for name, entry in BENCHMARKS.items()}
