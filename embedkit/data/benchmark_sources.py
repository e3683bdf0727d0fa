"""Download each registered benchmark once and turn it into a local BEIR-format folder.

Every source ends as the same layout, so one evaluator serves them all::

    <cache>/<benchmark name>/corpus.jsonl       {"_id", "title", "text"}
                            queries.jsonl      {"_id", "text"}
                            qrels/<split>.tsv  query-id <TAB> corpus-id <TAB> score (with that header)
                            benchmark.json     where it came from (source, revision, md5, counts)

``<cache>`` is ``$EMBEDKIT_CACHE/benchmarks`` (default ``~/.cache/embedkit/benchmarks``). Folders
are built beside their final place and renamed when complete, so a folder that exists is whole.

Sources (schemas checked against the publishers' cards and loaders):

- BEIR: the official zips; ``<name>.zip`` holds ``<name>/`` in BEIR layout, and
  ``cqadupstack.zip`` holds ``cqadupstack/<forum>/`` for the 12 forums.
- MLDR: ``Shitao/MLDR`` is a script dataset (which ``datasets`` 4+ no longer runs), so the raw
  files are read: ``mldr-v1.0-<lang>/<split>.jsonl.gz`` (``query_id``, ``query``,
  ``positive_passages``/``negative_passages`` of ``{docid, text}``) and
  ``mldr-v1.0-<lang>/corpus.jsonl.gz`` (``docid``, ``text``).
- CoIR: the MTEB-layout repos ``CoIR-Retrieval/CodeSearchNet`` (configs ``<lang>-corpus``,
  ``<lang>-queries``, ``<lang>-qrels``) and ``CoIR-Retrieval/stackoverflow-qa`` (``corpus``,
  ``queries``, ``default``): ``_id``/``title``/``text`` rows and ``query-id``/``corpus-id``/``score``
  qrels. The queries config holds every partition: where it has a ``partition`` column, only the
  scored split's rows are read (as MTEB's ``COIRCodeSearchNetRetrieval`` filters ``partition ==
  "test"``; a query id may repeat across partitions), then only the judged ones are kept. Titles
  are written as published; ``benchmark.json`` records that CoIR scores ``text`` alone.

A benchmark ``source`` may also be a local folder laid out like the hub repository (a clone of it),
which is read without any network access.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedkit.data.beir import BeirWriter
from embedkit.data.benchmarks import Benchmark
from embedkit.data.hub import HUB_PROBE_TIMEOUT_S, first_line, http_errors, hub_offline
from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

# Seconds to wait for a connection or a read. Short on purpose: an unreachable source should
# fail in seconds with instructions, not retry for minutes.
NETWORK_TIMEOUT_S = 15.0
MANIFEST = "benchmark.json"
_REQUIRED = ("corpus.jsonl", "queries.jsonl")


def default_cache_dir() -> Path:
    """``$EMBEDKIT_CACHE/benchmarks``, or ``~/.cache/embedkit/benchmarks``."""
    from embedkit.artifacts import cache_dir

    return cache_dir() / "benchmarks"


def benchmark_folder(entry: Benchmark, cache_dir: str | Path | None = None) -> Path:
    """Where ``entry``'s BEIR folder lives (or will live): ``<cache_dir>/<entry.name>``."""
    return _root(cache_dir) / entry.name


def _root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def read_benchmark_manifest(folder: str | Path) -> dict[str, Any]:
    """The ``benchmark.json`` of a materialised benchmark folder; ``{}`` for a folder without one (a user's)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmbedkitError(f"{path}: not valid JSON ({exc})") from None
    return manifest if isinstance(manifest, dict) else {}


def read_provenance(folder: str | Path) -> dict[str, Any]:
    """Where a cached benchmark folder came from, for results JSON: source and pinned revision.

    The revision is the hub commit for hub datasets and the zip's md5 for BEIR zips (their only
    version marker); both None for a folder without ``benchmark.json`` (a user's own folder).
    """
    manifest = read_benchmark_manifest(folder)
    revision = manifest.get("revision") or manifest.get("md5") or manifest.get("published_md5")
    return {"source": manifest.get("source"), "revision": revision}


def is_materialized(folder: Path, split: str) -> bool:
    """True when ``folder`` holds a complete BEIR folder for ``split``."""
    return all((folder / name).is_file() for name in _REQUIRED) and (folder / "qrels" / f"{split}.tsv").is_file()


def materialize(entry: Benchmark, cache_dir: str | Path | None = None) -> Path:
    """The local BEIR folder of one benchmark, downloading and converting it on first use.

    Returns ``<cache_dir>/<entry.name>`` holding ``corpus.jsonl``, ``queries.jsonl`` and
    ``qrels/<entry.split>.tsv``; ``cache_dir`` defaults to :func:`default_cache_dir` (which
    follows ``EMBEDKIT_CACHE``). A folder already there is returned as is. Aggregates (``beir/cqadupstack``) have no single folder: use
    :func:`materialize_all`. Raises :class:`EmbedkitError` quickly when the data is neither cached
    nor reachable, naming the benchmark and how to pass a local folder instead.
    """
    if entry.is_aggregate:
        raise EmbedkitError(f"{entry.name} is the mean of {len(entry.members)} sets with a folder each; "
                            "use materialize_all() to get them")
    folder = benchmark_folder(entry, cache_dir)
    if is_materialized(folder, entry.split):
        return folder
    if folder.exists():
        raise EmbedkitError(f"{folder} exists but is not a complete BEIR folder for split {entry.split!r} "
                            f"(needs {', '.join(_REQUIRED)}, qrels/{entry.split}.tsv); delete it to download again")
    cache = _root(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    _FETCHERS[entry.loader](entry, folder, cache)
    if not is_materialized(folder, entry.split):
        raise EmbedkitError(f"{entry.source} did not provide {entry.name} in BEIR layout "
                            f"(expected {folder}/corpus.jsonl, queries.jsonl, qrels/{entry.split}.tsv)")
    return folder


def materialize_all(entry: Benchmark, cache_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """``(dataset name, BEIR folder)`` for every set behind ``entry``.

    One pair for an ordinary benchmark; one per forum for ``beir/cqadupstack``
    (``beir/cqadupstack/android``...), whose scores :func:`embedkit.data.benchmarks.group_averages`
    then averages.
    """
    if not entry.is_aggregate:
        return [(entry.name, materialize(entry, cache_dir))]
    from embedkit.data.benchmarks import BENCHMARKS  # read when called: tests put local replicas in the registry

    return [(name, materialize(BENCHMARKS[name], cache_dir)) for name in entry.members]


# --------------------------------------------------------------------------------------------
# Writing a BEIR folder atomically


@contextmanager
def _building(final: Path) -> Iterator[Path]:
    """A temporary sibling folder that is renamed to ``final`` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield work
        _publish(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(work: Path, final: Path) -> None:
    try:
        os.replace(work, final)
    except OSError:
        if not final.is_dir():  # someone else publishing the same folder first is fine
            raise


def _write_manifest(folder: Path, entry_name: str, source: str, **extra: Any) -> None:
    from embedkit import __version__

    manifest = {"benchmark": entry_name, "source": source, **extra, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "embedkit_version": __version__}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _offline_error(entry: Benchmark, folder: Path, reason: str, hub: bool = False) -> EmbedkitError:
    hint = ""
    if hub and hub_offline():
        hint = " HF_HUB_OFFLINE is set, so only the Hugging Face cache was looked at."
    elif hub:
        hint = " If the Hugging Face cache already holds it, set HF_HUB_OFFLINE=1 to read it from there."
    where = f"the Hugging Face Hub ({entry.source})" if hub else entry.source
    return EmbedkitError(
        f"benchmark {entry.name!r} is not in the cache ({folder}) and could not be downloaded from "
        f"{where}: {reason.rstrip('.')}.{hint} Run once where there is internet and copy {folder} over "
        "(or point EMBEDKIT_CACHE at a copied cache), or score a local BEIR-format folder instead (corpus.jsonl, "
        f"queries.jsonl, qrels/{entry.split}.tsv): `embedkit eval --data path/to/beir-folder`, or in a recipe "
        "(run, sweep) eval.data: [path/to/beir-folder], e.g. --set 'eval.data=[path/to/beir-folder]'.")


# --------------------------------------------------------------------------------------------
# BEIR zips


def _download(url: str, dest: Path, timeout: float = NETWORK_TIMEOUT_S) -> str:
    """Stream ``url`` (http(s) or file) to ``dest`` through a ``.part`` file; return its md5."""
    from embedkit import __version__
    from embedkit.quiet import progress_bar

    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    request = urllib.request.Request(url, headers={"User-Agent": f"embedkit/{__version__}"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with progress_bar(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}", leave=False) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    os.replace(part, dest)
    return digest.hexdigest()


def _fetch_beir_zip(entry: Benchmark, folder: Path, cache: Path) -> None:
    """Download the zip and publish every BEIR folder inside it under ``<cache>/beir/``.

    ``cqadupstack.zip`` yields its 12 forums at once, so the zip is fetched once for all of them.
    """
    zip_name = urllib.parse.urlparse(entry.source).path.rsplit("/", 1)[-1]
    downloads = cache / "_downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / zip_name
    md5 = None
    if not archive.is_file():
        logger.info("downloading %s from %s", entry.name, entry.source)
        try:
            md5 = _download(entry.source, archive)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise _offline_error(entry, folder, f"{type(exc).__name__}: {exc}") from None
        if entry.md5 and md5 != entry.md5:
            logger.warning("%s: md5 %s differs from the published %s (the file may have been revised upstream)",
                           zip_name, md5, entry.md5)
    beir_root = cache / "beir"
    beir_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".unzip-", dir=beir_root) as tmp:
        try:
            with zipfile.ZipFile(archive) as zf:
                _safe_extract(zf, Path(tmp))
        except zipfile.BadZipFile as exc:
            archive.unlink(missing_ok=True)
            raise EmbedkitError(f"{archive}: not a valid zip ({exc}); it was removed, run again to re-download") \
                from None
        published = 0
        for corpus in sorted(Path(tmp).rglob("corpus.jsonl")):
            inner = corpus.parent
            relative = inner.relative_to(tmp)
            final = beir_root / relative
            if final.exists():
                continue
            _write_manifest(inner, f"beir/{relative.as_posix()}", entry.source, zip=zip_name,
                            md5=md5, published_md5=entry.md5)
            final.parent.mkdir(parents=True, exist_ok=True)
            _publish(inner, final)
            published += 1
        logger.info("%s: %d BEIR folder(s) published under %s", zip_name, published, beir_root)
    if folder.is_dir():
        archive.unlink(missing_ok=True)


def _safe_extract(zf: zipfile.ZipFile, dest: Path) -> None:
    root = dest.resolve()
    for member in zf.infolist():
        if member.filename.startswith("__MACOSX/"):
            continue
        target = (dest / member.filename).resolve()
        if root not in target.parents and target != root:
            raise EmbedkitError(f"{zf.filename}: member {member.filename!r} points outside the extraction folder")
        zf.extract(member, dest)


# --------------------------------------------------------------------------------------------
# Hugging Face Hub sources


def _is_local(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def _probe_hub(entry: Benchmark, folder: Path) -> None:
    """Fail in seconds when the Hub cannot be reached (its download calls retry for ~25 s).

    The question is put to the hub client itself (``dataset_info`` at the pinned revision, with a
    short time-out), so proxies (``HTTPS_PROXY``), ``HF_ENDPOINT`` and tokens are honoured exactly as
    the download that follows will honour them; a missing revision is reported here too.
    """
    if hub_offline():
        return  # offline mode reads the Hugging Face cache only, and fails fast by itself
    from huggingface_hub import HfApi, constants

    try:
        HfApi(endpoint=constants.ENDPOINT).dataset_info(entry.source, revision=entry.revision,
                                                        timeout=HUB_PROBE_TIMEOUT_S)
    except (OSError, ValueError, *http_errors()) as exc:
        raise _offline_error(entry, folder, f"cannot reach {constants.ENDPOINT} "
                             f"({type(exc).__name__}: {first_line(exc)})", hub=True) from None


def _hub_file(entry: Benchmark, folder: Path, filename: str) -> Path:
    """One file of a hub dataset repository (or of a local copy of it)."""
    if _is_local(entry.source):
        path = Path(entry.source).expanduser() / filename
        if not path.is_file():
            raise EmbedkitError(f"{path} not found (the local copy of {entry.name} lacks {filename})")
        return path
    _probe_hub(entry, folder)
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(entry.source, filename, repo_type="dataset", revision=entry.revision))
    except (OSError, ValueError) as exc:
        raise _offline_error(entry, folder, f"{type(exc).__name__}: {first_line(exc)}", hub=True) from None


def _hub_dataset(entry: Benchmark, folder: Path, config: str, split: str | None) -> Any:
    """One config of a hub dataset; its only split when ``split`` is None (MTEB reads the first)."""
    import datasets

    local = _is_local(entry.source)
    if not local:
        _probe_hub(entry, folder)
    path = str(Path(entry.source).expanduser()) if local else entry.source
    try:
        loaded = datasets.load_dataset(path, config, split=split, revision=None if local else entry.revision)
    except (OSError, ValueError) as exc:
        raise _offline_error(entry, folder, f"{type(exc).__name__}: {first_line(exc)}", hub=not local) from None
    if split is None:
        loaded = next(iter(loaded.values()))
    return loaded


def _column(row_names: Iterable[str], where: str, *candidates: str) -> str:
    names = list(row_names)
    for name in candidates:
        if name in names:
            return name
    raise EmbedkitError(f"{where}: none of the columns {', '.join(candidates)} is present (has {', '.join(names)})")


def _rows(dataset: Any, columns: list[str], batch_size: int = 2048) -> Iterator[tuple[Any, ...]]:
    for batch in dataset.select_columns(columns).iter(batch_size=batch_size):
        yield from zip(*(batch[c] for c in columns))


def _fetch_coir(entry: Benchmark, folder: Path, cache: Path) -> None:
    """CoIR in the MTEB layout: ``[<lang>-]corpus``, ``[<lang>-]queries``, ``<lang>-qrels``/``default``."""
    prefix = f"{entry.subset}-" if entry.subset else ""
    qrels_ds = _hub_dataset(entry, folder, f"{prefix}qrels" if prefix else "default", entry.split)
    where = f"{entry.source} qrels ({entry.split})"
    q_col = _column(qrels_ds.column_names, where, "query-id", "query_id")
    d_col = _column(qrels_ds.column_names, where, "corpus-id", "corpus_id")
    s_col = _column(qrels_ds.column_names, where, "score")
    qrels = [(str(q), str(d), int(s)) for q, d, s in _rows(qrels_ds, [q_col, d_col, s_col])]
    judged = {q for q, _, _ in qrels}
    corpus_ds = _hub_dataset(entry, folder, f"{prefix}corpus", None)
    queries_ds = _hub_dataset(entry, folder, f"{prefix}queries", None)
    logger.info("converting %s: %d qrels, %d documents", entry.name, len(qrels), len(corpus_ds))
    where_c, where_q = f"{entry.source} {prefix}corpus", f"{entry.source} {prefix}queries"
    c_id = _column(corpus_ds.column_names, where_c, "_id", "id")
    c_text = _column(corpus_ds.column_names, where_c, "text")
    has_title = "title" in corpus_ds.column_names
    q_id = _column(queries_ds.column_names, where_q, "_id", "id")
    q_text = _column(queries_ds.column_names, where_q, "text")
    with _building(folder) as work:
        writer = BeirWriter(work, entry.split)
        corpus_cols = [c_id, c_text] + (["title"] if has_title else [])
        writer.write_corpus((str(row[0]), str(row[2] or "") if has_title else "", str(row[1] or ""))
                            for row in _rows(corpus_ds, corpus_cols))
        writer.write_queries(_scored_queries(queries_ds, q_id, q_text, entry.split, judged, where_q))
        writer.write_qrels(qrels)
        if writer.counts["queries"] < len(judged):
            raise EmbedkitError(f"{where_q}: {len(judged) - writer.counts['queries']} of the {len(judged)} queries "
                                f"judged in {entry.split} are missing")
        _write_manifest(work, entry.name, entry.source, revision=entry.revision, config_prefix=entry.subset,
                        split=entry.split, counts=writer.counts, document_text=entry.document_text,
                        queries_partition=entry.split if "partition" in queries_ds.column_names else None)


def _scored_queries(queries_ds: Any, q_id: str, q_text: str, split: str, judged: set[str],
                    where: str) -> Iterator[tuple[str, str]]:
    """The judged queries of ``split``: rows of the other partitions are skipped first (their ids may repeat
    the scored ones), and an id repeated within the split is refused."""
    partition = "partition" in queries_ds.column_names
    columns = [q_id, q_text] + (["partition"] if partition else [])
    seen: set[str] = set()
    for row in _rows(queries_ds, columns):
        qid = str(row[0])
        if (partition and str(row[2]) != split) or qid not in judged:
            continue
        if qid in seen:
            raise EmbedkitError(f"{where}: query id {qid!r} appears twice in partition {split!r}")
        seen.add(qid)
        yield qid, str(row[1] or "")


def _fetch_mldr(entry: Benchmark, folder: Path, cache: Path) -> None:
    """MLDR raw files: queries with their positive passages, and the long-document corpus."""
    from embedkit.data.records import iter_jsonl

    lang = entry.subset or "en"
    queries_file = _hub_file(entry, folder, f"mldr-v1.0-{lang}/{entry.split}.jsonl.gz")
    corpus_file = _hub_file(entry, folder, f"mldr-v1.0-{lang}/corpus.jsonl.gz")
    queries: list[tuple[str, str]] = []
    qrels: list[tuple[str, str, int]] = []
    for lineno, obj in iter_jsonl(queries_file):
        where = f"{queries_file}:{lineno}"
        qid, text = _field(obj, where, "query_id"), _field(obj, where, "query")
        positives = _field(obj, where, "positive_passages")
        if not isinstance(positives, list) or not positives:
            raise EmbedkitError(f"{where}: positive_passages must be a non-empty list")
        queries.append((str(qid), str(text)))
        qrels.extend((str(qid), str(_field(p, where, "docid")), 1) for p in positives)

    def corpus_rows() -> Iterator[tuple[str, str, str]]:
        for lineno, obj in iter_jsonl(corpus_file):
            where = f"{corpus_file}:{lineno}"
            yield str(_field(obj, where, "docid")), "", str(_field(obj, where, "text"))

    logger.info("converting %s: %d queries", entry.name, len(queries))
    with _building(folder) as work:
        writer = BeirWriter(work, entry.split)
        writer.write_corpus(corpus_rows())
        writer.write_queries(queries)
        writer.write_qrels(qrels)
        _write_manifest(work, entry.name, entry.source, revision=entry.revision, language=lang,
                        split=entry.split, counts=writer.counts)


def _field(obj: Any, where: str, key: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise EmbedkitError(f"{where}: missing key {key!r}")
    return obj[key]


_FETCHERS: dict[str, Callable[[Benchmark, Path, Path], None]] = {
    "beir-zip": _fetch_beir_zip,
    "mldr": _fetch_mldr,
    "coir": _fetch_coir,
}

