"""Score a model on a BEIR-format folder: index (reused or cached) → search → pytrec_eval → results JSON."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from embedkit.artifacts import (
    cache_dir,
    check_results_file,
    check_writable,
    model_fingerprint,
    settings_key,
    write_json,
)
from embedkit.config import NOT_RECORDED, EvalOptions, IndexSettings, narrow, recorded_settings
from embedkit.data.beir import BeirData, check_judged_documents, load_beir
from embedkit.evaluate.chunking import ChunkedCorpus, max_pool
from embedkit.evaluate.metrics import Run, apply_self_hit_policy, drop_self_hits, evaluate_run, top_k, write_trec_run
from embedkit.evaluate.retrieval import is_plain, retriever_for_eval
from embedkit.evaluate.settings import model_name, run_settings
from embedkit.index.base import FORMAT_VERSION, Index, Searcher

logger = logging.getLogger(__name__)

__all__ = ["EvalOptions", "evaluate", "retrieve", "open_eval_index", "document_text_of"]


def retrieve(index: Searcher, queries: dict[str, str], k: int, batch: int = 4096, chunked: bool = False,
             drop_self: bool = True) -> Run:
    """Top-k per query, with self-hits (query id == document id) removed before cutting to k.

    ``chunked``: the index holds windows of documents; 4·k windows are fetched and each document
    keeps its best window's score.
    """
    qids = list(queries)
    run: Run = {}
    ids = index.store.ids
    depth = 4 * k if chunked else k + int(drop_self)
    for start in range(0, len(qids), batch):
        chunk = qids[start:start + batch]
        scores, positions = index.search_positions([queries[q] for q in chunk], depth)
        for qid, row_s, row_p in zip(chunk, scores, positions):
            run[qid] = {ids[p]: float(s) for s, p in zip(row_s, row_p) if p >= 0}
    if chunked:
        run = max_pool(run)
    return top_k(drop_self_hits(run) if drop_self else run, k)


def _eval_settings(options: EvalOptions, index: IndexSettings | None) -> IndexSettings:
    """The index settings evaluation builds with: the backend's from ``index``, the encoding's from ``options``."""
    return replace(narrow(IndexSettings, index or IndexSettings()), batch_size=options.batch_size,
                   max_length=options.max_length, truncate_dim=options.truncate_dim, precision=options.precision,
                   packed=options.packed, model_backend=options.model_backend)


def cache_tag(build: IndexSettings, kind: str, chunk_tokens: int | None) -> str:
    """The name of the index evaluation keeps in the cache for these settings (a hash, then the readable parts:
    length and dimension); with the model's and the corpus's fingerprints, the cached index's folder name."""
    recorded = recorded_settings(build, skip=NOT_RECORDED)
    return settings_key([recorded, kind, chunk_tokens, FORMAT_VERSION], length=8) + \
        (f"-len{build.max_length}" if build.max_length else "") + \
        (f"-dim{build.truncate_dim}" if build.truncate_dim else "")


def open_eval_index(model: str, data: BeirData, options: EvalOptions, scratch: Path,
                    index: IndexSettings | None = None, index_dir: str | Path | None = None,
                    colbert_library: str = "auto") -> tuple[Index, dict[str, float]]:
    """An index of ``data``'s corpus for ``model`` (or ``bm25``): ``index_dir`` if it holds the same documents
    encoded the same way (same content fingerprint, model, kind and settings: a file and its BEIR folder
    match), else one built once per (model, documents, settings) under the cache (under ``scratch``, deleted by
    the caller, when the cache is off). The backend comes from ``index`` (default ``auto``), the encoding from
    ``options``; ``colbert_library`` loads a colbert model.

    The corpus's content fingerprint must be known (a full pass over ``data.corpus``, as
    :func:`~embedkit.data.beir.check_judged_documents` makes, computes it).
    """
    from embedkit.index import encoders
    from embedkit.index.build import build_index, index_differences, open_index
    from embedkit.index.registry import encoder_kind

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    settings = _eval_settings(options, index)
    kind = encoder_kind(settings, model, options.kind)
    model = encoders.resolve(kind, model)
    fingerprint = data.corpus.fingerprint
    if index_dir is not None and options.long_documents == "truncate" and fingerprint:
        changes = index_differences(index_dir, model, data.corpus, settings, kind, fingerprint=fingerprint)
        if changes == []:
            logger.debug("%s: searching the index %s (same documents, model and settings)", data.folder.name,
                         index_dir)
            return open_index(index_dir, model, settings, colbert_library=colbert_library), seconds
        if changes:
            logger.info("%s: the index %s is not this corpus encoded this way (%s); encoding it for evaluation",
                        data.folder.name, index_dir, "; ".join(changes))
    encoder = encoders.load_encoder(kind, model, settings, colbert_library)
    corpus = data.corpus
    chunk_tokens = None
    if options.long_documents == "chunk-maxpool" and encoder.model is not None:  # bm25 has no tokenizer
        chunk_tokens = options.max_length or int(encoder.model.max_seq_length)
        corpus = ChunkedCorpus(data.corpus, encoder.model.tokenizer, chunk_tokens)
    build = replace(settings, keep_shards=False)
    if options.use_cache:
        tag = cache_tag(build, kind, chunk_tokens)
        folder = cache_dir() / "indexes" / f"{kind}-{tag}-{model_fingerprint(model)}-{(fingerprint or '')[:16]}"
    else:
        scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="index-", dir=scratch)) / "index"
    if not (options.use_cache and fingerprint and (folder / "embedkit-index.json").is_file()):
        if options.use_cache:
            logger.info("%s: indexing the corpus for evaluation into the cache, %s (EMBEDKIT_CACHE moves it, "
                        "--no-cache deletes it after; an index of these documents is reused with --index-dir)",
                        data.folder.name, folder)
        build_index(model, corpus, folder, build, kind=kind, encoder=encoder, overwrite=True,
                    progress=logger.isEnabledFor(logging.INFO))
    seconds["index"] = time.perf_counter() - start
    return open_index(folder, model, encoder=encoder), seconds


def document_text_of(folder: Path, protocol: str) -> str:
    """What a document of ``folder`` is under ``protocol``: ``text`` alone for the CoIR sets under the default
    protocol, as CoIR scores them, else ``title+text`` (the benchmark is named by the folder's benchmark.json)."""
    from embedkit.data.benchmark_sources import read_benchmark_manifest
    from embedkit.data.benchmarks import BENCHMARKS, document_text_for

    name = read_benchmark_manifest(folder).get("benchmark")
    return document_text_for(protocol, BENCHMARKS.get(name) if isinstance(name, str) else None)


def evaluate(model: str, data_folder: str | Path, options: EvalOptions | None = None,
             output: str | Path | None = None, run_file: str | Path | None = None,
             dataset_name: str | None = None, labels: dict[str, Any] | None = None,
             index: IndexSettings | None = None, index_dir: str | Path | None = None,
             document_text: str | None = None, colbert_library: str = "auto") -> dict[str, Any]:
    """nDCG@10, Recall@k, MRR@10 and MAP@k of ``model`` (or ``"bm25"``) on a BEIR folder, retrieving
    ``options.k`` documents per query (the metric names carry the depth: ``recall@10`` when k is 10).

    ``index`` chooses the backend (default ``auto``); ``index_dir`` is an index to search instead of building
    one, used when it holds the same documents encoded the same way. ``document_text`` is ``title+text`` or
    ``text`` (default: the benchmark's convention under ``options.protocol``, see :func:`document_text_of`).
    ``labels`` are stored in the result as given (e.g. ``{"mldr_setting": "id"}``) and count in its settings.
    ``colbert_library`` loads a colbert model (and a colbert reranker's). The result records ``k``,
    ``settings`` (everything that shapes a number) and ``settings_key``.
    """
    options = options or EvalOptions()
    folder = Path(data_folder)
    check_results_file(output, "output")  # before any work; never over a file embedkit did not write
    if run_file:
        check_writable(run_file, "run file")
    document_text = document_text or document_text_of(folder, options.protocol)
    data = load_beir(folder, options.split, titles=document_text == "title+text")
    coverage = check_judged_documents(data)  # one pass over the corpus before any encoding (its fingerprint too)
    dataset = dataset_name or folder.name
    settings = run_settings(model, options, labels, index, document_text)
    scratch = cache_dir() / "tmp" / f"eval-{os.getpid()}-{time.monotonic_ns()}"
    try:
        found, seconds = open_eval_index(model, data, options, scratch, index, index_dir, colbert_library)
        chunked = "#chunks" in found.manifest.corpus  # a ChunkedCorpus: windows of documents
        searcher, queries, retrieve_info = found, data.queries, {}
        if not is_plain(options.retrieve):
            searcher, queries, retrieve_info = retriever_for_eval(found, options.retrieve, data.queries, data.qrels,
                                                                  options.batch_size, colbert_library)
        start = time.perf_counter()
        run = retrieve(searcher, queries, options.k + 1, chunked=chunked, drop_self=False)
        run, self_hits = apply_self_hit_policy(run, options.protocol, dataset, options.k)
        seconds["search"] = time.perf_counter() - start
        statistics = found.statistics()  # before a scratch index is deleted
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    qrels = {q: data.qrels[q] for q in queries if q in data.qrels} if retrieve_info else data.qrels
    result: dict[str, Any] = evaluate_run(qrels, run, per_query=options.per_query, k=options.k)
    from embedkit import __version__
    from embedkit.data.benchmark_sources import read_provenance

    result.update({
        "model": model, "model_name": model_name(model), "kind": found.manifest.kind,
        "backend": found.manifest.backend, "dataset": dataset, "split": options.split, "k": options.k,
        "num_queries": len(queries), "num_documents": coverage.documents,
        "judged_missing": len(coverage.missing), "protocol": options.protocol, "self_hits": self_hits,
        "document_text": document_text, "dataset_source": read_provenance(data.folder),
        "corpus_fingerprint": data.corpus.fingerprint,
        # what the encoder read: the model's own length when options.max_length is None (settings hold the asked)
        "max_length": found.manifest.settings.get("effective_max_length", options.max_length),
        "long_documents": "chunk-maxpool" if chunked else "truncate" if found.manifest.embedding_dim else "whole",
        "seconds": {k: round(v, 3) for k, v in seconds.items()}, "embedkit_version": __version__,
    } | statistics | retrieve_info | (labels or {}) | {"settings": settings, "settings_key": settings_key(settings)})
    if run_file:
        Path(run_file).parent.mkdir(parents=True, exist_ok=True)
        write_trec_run(run, run_file)
    if output:  # last: a results JSON marks a finished evaluation (embedkit run and benchmark runs skip it)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        write_json(output, result)
    return result
