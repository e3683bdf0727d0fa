"""The benchmark registry: every public evaluation set of the ModernBERT paper, by name.

Each :class:`Benchmark` says where the data comes from and how it is scored; the loaders in
:mod:`embedkit.data.benchmark_sources` turn any of them into a local BEIR-format folder
(``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``), so one evaluator serves them all.

Names are ``family/dataset`` (``beir/scifact``, ``csn/python``, ``coir/stackoverflow-qa``) or a
single word (``mldr``); groups (``beir``, ``beir-dev4``, ``csn``, ``paper``) expand to several.

>>> [b.name for b in resolve_benchmarks("beir-dev4,csn/python")]
['beir/nfcorpus', 'beir/scifact', 'beir/trec-covid', 'beir/fiqa', 'csn/python']
>>> round(group_averages({"csn/" + lang: 0.5 for lang in CSN_LANGUAGES})["csn"].mean, 3)
0.5
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from embedkit.errors import EmbedkitError

LoaderName = Literal["beir-zip", "mldr", "coir"]
# What a document is when encoded: its title and text joined (BEIR's and MTEB's loaders), or its text alone
# (CoIR's: its models encode ``doc["text"]``, and the paper scored CodeSearchNet and StackOverflow-QA with it).
DocumentText = Literal["title+text", "text"]

# The official BEIR download location (github.com/beir-cellar/beir README, "Available datasets").
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"


@dataclass(frozen=True)
class Benchmark:
    """One evaluation set: where it lives, which split is scored, and with which metric.

    ``members`` is set on aggregates only (``beir/cqadupstack``): their score is the mean of the
    members' scores, and :func:`embedkit.data.benchmark_sources.materialize_all` yields one BEIR
    folder per member.
    """

    name: str                      # registry key, also the ``dataset`` field of results JSON
    title: str                     # display name
    loader: LoaderName             # which converter in embedkit.data.benchmark_sources builds the folder
    source: str                    # download URL (BEIR zips) or Hugging Face dataset id
    subset: str | None             # folder inside the zip (cqadupstack forum) / hub config prefix / language
    split: str                     # the qrels split that is scored
    size: str                      # scored queries / corpus documents, as published
    group: str                     # family: beir | mldr | csn | coir
    metric: str = "ndcg@10"
    max_length: int = 512          # document tokens the paper used: 8192 for MLDR's long documents
    members: tuple[str, ...] = ()
    revision: str | None = None    # pinned hub revision (the one MTEB pins), None = main
    md5: str | None = None         # checksum published next to the BEIR zip
    document_text: DocumentText = "title+text"  # under the default protocol; MTEB's joins title and text always
    mteb_task: str | None = None   # the MTEB task of the same set (embedkit eval --mteb-results), None = none
    mteb_subset: str = "default"   # its hf_subset there (MultiLongDocRetrieval: en, CodeSearchNet: the language)

    @property
    def is_aggregate(self) -> bool:
        return bool(self.members)


# (zip name, title, scored split, size as in the BEIR README, md5 published there)
_BEIR_SETS: tuple[tuple[str, str, str, str, str], ...] = (
    ("nfcorpus", "NFCorpus", "test", "323 q / 3.6K docs", "a89dba18a62ef92f7d323ec890a0d38d"),
    ("scifact", "SciFact", "test", "300 q / 5K docs", "5f7d1de60b170fc8027bb7898e2efca1"),
    ("trec-covid", "TREC-COVID", "test", "50 q / 171K docs", "ce62140cb23feb9becf6270d0d1fe6d1"),
    ("fiqa", "FiQA-2018", "test", "648 q / 57K docs", "17918ed23cd04fb15047f73e6c3bd9d9"),
    ("arguana", "ArguAna", "test", "1,406 q / 8.67K docs", "8ad3e3c2a5867cdced806d6503f29b99"),
    ("climate-fever", "Climate-FEVER", "test", "1,535 q / 5.42M docs", "8b66f0a9126c521bae2bde127b4dc99d"),
    ("dbpedia-entity", "DBPedia", "test", "400 q / 4.63M docs", "c2a39eb420a3164af735795df012ac2c"),
    ("fever", "FEVER", "test", "6,666 q / 5.42M docs", "5a818580227bfb4b35bb6fa46d9b6c03"),
    ("hotpotqa", "HotpotQA", "test", "7,405 q / 5.23M docs", "f412724f78b0d91183a0e86805e16114"),
    # MS MARCO is scored on its dev split in BEIR (the test split holds the TREC DL'19 queries).
    ("msmarco", "MS MARCO", "dev", "6,980 q / 8.84M docs", "444067daf65d982533ea17ebd59501e4"),
    ("nq", "NQ", "test", "3,452 q / 2.68M docs", "d4d3d2e48787a744b6f6e691ff534307"),
    ("quora", "Quora", "test", "10,000 q / 523K docs", "18fb154900ba42a600f84b839c173167"),
    ("scidocs", "SCIDOCS", "test", "1,000 q / 25K docs", "38121350fc3a4d2f48850f6aff52e4a9"),
    # Touché-2020 v2: the zip at the official URL is the revised version BEIR reports.
    ("webis-touche2020", "Touche-2020 (v2)", "test", "49 q / 382K docs", "46f650ba5a527fc69e0a6521c5a23563"),
)

CQADUPSTACK_FORUMS: tuple[str, ...] = (
    "android", "english", "gaming", "gis", "mathematica", "physics",
    "programmers", "stats", "tex", "unix", "webmasters", "wordpress",
)
CQADUPSTACK_MD5 = "4e41456d7df8ee7760a7f866133bda78"

CSN_LANGUAGES: tuple[str, ...] = ("python", "javascript", "go", "ruby", "java", "php")
# Test queries per language: the ``test`` split of CoIR-Retrieval/CodeSearchNet-<lang>-qrels.
_CSN_SIZES = {"python": "14,918 q / 280K docs", "javascript": "3,291 q", "go": "8,122 q / 182K docs",
              "ruby": "1,261 q", "java": "see CoIR card", "php": "see CoIR card"}
# Revisions pinned by MTEB's MultiLongDocRetrieval (Shitao/MLDR), COIRCodeSearchNetRetrieval and
# StackOverflowQA tasks, so a dataset update upstream cannot silently change scores.
_MLDR_REVISION = "d67138e705d963e346253a80e59676ddb418810a"
_CSN_REVISION = "4adc7bc41202b5c13543c9c886a25f340634dab3"
_SQA_REVISION = "db8f169f3894c14a00251061f957b2063eef2bd5"


# The MTEB task of each BEIR set (mteb 2.26 names; Touche2020 is the v2 data BEIR reports).
_MTEB_BEIR = {"nfcorpus": "NFCorpus", "scifact": "SciFact", "trec-covid": "TRECCOVID", "fiqa": "FiQA2018",
              "arguana": "ArguAna", "climate-fever": "ClimateFEVER", "dbpedia-entity": "DBPedia", "fever": "FEVER",
              "hotpotqa": "HotpotQA", "msmarco": "MSMARCO", "nq": "NQ", "quora": "QuoraRetrieval",
              "scidocs": "SCIDOCS", "webis-touche2020": "Touche2020"}


def _build_registry() -> dict[str, Benchmark]:
    entries: list[Benchmark] = []
    for zip_name, title, split, size, md5 in _BEIR_SETS:
        entries.append(Benchmark(f"beir/{zip_name}", title, "beir-zip", BEIR_URL.format(name=zip_name), None,
                                 split, size, "beir", md5=md5, mteb_task=_MTEB_BEIR[zip_name]))
    forums = tuple(f"beir/cqadupstack/{forum}" for forum in CQADUPSTACK_FORUMS)
    entries.append(Benchmark("beir/cqadupstack", "CQADupStack (mean of 12 forums)", "beir-zip",
                             BEIR_URL.format(name="cqadupstack"), None, "test", "13,145 q / 457K docs", "beir",
                             members=forums, md5=CQADUPSTACK_MD5))
    for forum, name in zip(CQADUPSTACK_FORUMS, forums):
        entries.append(Benchmark(name, f"CQADupStack {forum}", "beir-zip", BEIR_URL.format(name="cqadupstack"),
                                 forum, "test", "one forum", "beir", md5=CQADUPSTACK_MD5,
                                 mteb_task=f"CQADupstack{forum.capitalize()}Retrieval"))
    entries.append(Benchmark("mldr", "MLDR (English)", "mldr", "Shitao/MLDR", "en", "test",
                             "800 q / 200K docs (avg 3,308 words)", "mldr", max_length=8192,
                             revision=_MLDR_REVISION, mteb_task="MultiLongDocRetrieval", mteb_subset="en"))
    for lang in CSN_LANGUAGES:
        entries.append(Benchmark(f"csn/{lang}", f"CodeSearchNet {lang} (CoIR)", "coir", "CoIR-Retrieval/CodeSearchNet",
                                 lang, "test", _CSN_SIZES[lang], "csn", revision=_CSN_REVISION, document_text="text",
                                 mteb_task="COIRCodeSearchNetRetrieval", mteb_subset=lang))
    entries.append(Benchmark("coir/stackoverflow-qa", "StackOverflow-QA (CoIR)", "coir",
                             "CoIR-Retrieval/stackoverflow-qa", None, "test", "~2K test q / 20K docs", "coir",
                             revision=_SQA_REVISION, document_text="text", mteb_task="StackOverflowQA"))
    return {entry.name: entry for entry in entries}


BENCHMARKS: dict[str, Benchmark] = _build_registry()

# The 15 BEIR sets the paper averages (CQADupStack counted once, as the mean of its forums).
BEIR_15: tuple[str, ...] = tuple(f"beir/{row[0]}" for row in _BEIR_SETS) + ("beir/cqadupstack",)
# The four small sets the paper used to pick learning rates.
BEIR_DEV4: tuple[str, ...] = ("beir/nfcorpus", "beir/scifact", "beir/trec-covid", "beir/fiqa")
CSN_ALL: tuple[str, ...] = tuple(f"csn/{lang}" for lang in CSN_LANGUAGES)

GROUPS: dict[str, tuple[str, ...]] = {
    "beir": BEIR_15,
    "beir-dev4": BEIR_DEV4,
    "csn": CSN_ALL,
    "paper": BEIR_15 + ("mldr",) + CSN_ALL + ("coir/stackoverflow-qa",),
}

# Spellings people use for the same set.
ALIASES: dict[str, str] = {
    "beir/dbpedia": "beir/dbpedia-entity",
    "beir/touche2020": "beir/webis-touche2020",
    "beir/touche-2020": "beir/webis-touche2020",
    "beir/ms-marco": "beir/msmarco",
    "codesearchnet": "csn",
    "stackoverflow-qa": "coir/stackoverflow-qa",
    "sqa": "coir/stackoverflow-qa",
    "mldr/en": "mldr",
}


def document_text_for(protocol: str, benchmark: Benchmark | None) -> DocumentText:
    """What a document is under ``protocol``: MTEB's loaders join title and text on every task; the default
    (``beir``) protocol follows each set's own framework: BEIR's join, CoIR's text alone.

    >>> document_text_for("beir", BENCHMARKS["csn/python"]), document_text_for("mteb", BENCHMARKS["csn/python"])
    ('text', 'title+text')
    >>> document_text_for("beir", None)  # a user's own folder
    'title+text'
    """
    if protocol == "mteb" or benchmark is None:
        return "title+text"
    return benchmark.document_text


def get_benchmark(name: str) -> Benchmark:
    """The registry entry for one name (aliases and a missing ``beir/`` prefix are accepted)."""
    found = _lookup(name)
    if isinstance(found, Benchmark):
        return found
    raise _unknown(name)


def _lookup(name: str) -> Benchmark | tuple[str, ...] | None:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    for candidate in (key, f"beir/{key}", f"coir/{key}"):
        candidate = ALIASES.get(candidate, candidate)
        if candidate in GROUPS:
            return GROUPS[candidate]
        if candidate in BENCHMARKS:
            return BENCHMARKS[candidate]
    return None


def _unknown(name: str) -> EmbedkitError:
    valid = sorted(GROUPS) + sorted(BENCHMARKS)
    close = difflib.get_close_matches(name.strip().lower(), valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return EmbedkitError(f"unknown benchmark {name!r}.{hint} Valid names: groups {', '.join(sorted(GROUPS))}; "
                         f"benchmarks {', '.join(n for n in BENCHMARKS if not _is_forum(n))}; "
                         f"CQADupStack forums beir/cqadupstack/<{'|'.join(CQADUPSTACK_FORUMS)}>. "
                         "To score a folder of your own, pass --data path/to/beir-folder.")


def _is_forum(name: str) -> bool:
    return name.startswith("beir/cqadupstack/")


def resolve_benchmarks(spec: str | Iterable[str]) -> list[Benchmark]:
    """Expand a comma-separated list of names and groups into registry entries, in order, once each.

    ``"beir,csn/python"`` gives the 15 BEIR sets then CodeSearchNet-python; ``beir/scifact`` is one
    set; ``beir/cqadupstack`` is the aggregate whose members are its 12 forums. Unknown names raise
    :class:`EmbedkitError` listing the valid ones.
    """
    names = [part.strip() for part in (spec.split(",") if isinstance(spec, str) else spec) if part.strip()]
    if not names:
        raise EmbedkitError("no benchmark named; valid groups: " + ", ".join(sorted(GROUPS)))
    resolved: list[Benchmark] = []
    seen: set[str] = set()
    for name in names:
        found = _lookup(name)
        if found is None:
            raise _unknown(name)
        for entry in ([found] if isinstance(found, Benchmark) else [BENCHMARKS[n] for n in found]):
            if entry.name not in seen:
                seen.add(entry.name)
                resolved.append(entry)
    return resolved


@dataclass(frozen=True)
class GroupScore:
    """The mean of a group's member scores, and which members were there to average."""

    name: str
    mean: float | None                 # over the members found (None when none was)
    found: tuple[str, ...]
    missing: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def expected(self) -> int:
        return len(self.found) + len(self.missing)


def _mean_of(name: str, members: Iterable[str], scores: Mapping[str, float]) -> GroupScore:
    found = tuple(m for m in members if m in scores)
    missing = tuple(m for m in members if m not in scores)
    mean = sum(scores[m] for m in found) / len(found) if found else None
    return GroupScore(name, mean, found, missing)


def group_averages(scores: Mapping[str, float]) -> dict[str, GroupScore]:
    """Paper-style averages of per-dataset scores (nDCG@10 by default), keyed by group name.

    ``scores`` maps result dataset names (``beir/scifact``, ``beir/cqadupstack/android``,
    ``csn/python``...) to one number each. CQADupStack is first averaged over its 12 forums (a
    score given for ``beir/cqadupstack`` itself is used when no forum is present); ``beir`` is then
    the mean of the 15 sets with CQADupStack counted once, and counts CQADupStack only when all 12
    forums are there. Returns ``beir/cqadupstack``, ``beir``, ``beir-dev4`` and ``csn``; check
    :attr:`GroupScore.complete` before comparing a mean with the paper's.
    """
    merged = dict(scores)
    cqa = _mean_of("beir/cqadupstack", BENCHMARKS["beir/cqadupstack"].members, scores)
    if not cqa.found and "beir/cqadupstack" in scores:
        cqa = GroupScore("beir/cqadupstack", scores["beir/cqadupstack"], ("beir/cqadupstack",))
    merged.pop("beir/cqadupstack", None)
    if cqa.complete and cqa.mean is not None:
        merged["beir/cqadupstack"] = cqa.mean
    return {
        "beir/cqadupstack": cqa,
        "beir": _mean_of("beir", BEIR_15, merged),
        "beir-dev4": _mean_of("beir-dev4", BEIR_DEV4, merged),
        "csn": _mean_of("csn", CSN_ALL, merged),
    }


def list_benchmarks_table(include_forums: bool = False) -> str:
    """A plain-text table of the registry (name, source, split, size, metric, max_length, document text) and
    groups."""
    header = ("name", "source", "split", "size", "metric", "max_length", "documents")
    rows = [(b.name, b.source if b.loader != "beir-zip" else b.source.rsplit("/", 1)[-1] + " (BEIR)",
             b.split, b.size, b.metric, str(b.max_length), b.document_text)
            for b in BENCHMARKS.values() if include_forums or not _is_forum(b.name)]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [line(header), line("-" * w for w in widths), *(line(r) for r in rows), ""]
    if not include_forums:
        out.append("beir/cqadupstack averages its 12 forums, each also a name: beir/cqadupstack/<forum> "
                   f"({', '.join(CQADUPSTACK_FORUMS)}).")
    out.append("documents: what a document is under the default protocol (beir); --protocol mteb joins title and "
               "text on every set.")
    out.append("BEIR zips come from " + BEIR_URL.format(name="<name>"))
    for group, members in GROUPS.items():
        out.append(f"group {group}: {len(members)} sets" + (f" ({', '.join(members)})" if len(members) <= 6 else ""))
    return "\n".join(out) + "\n"
