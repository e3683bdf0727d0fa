"""Score a model on a BEIR-format folder: index (cached) → search → pytrec_eval → results JSON."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from embedkit.artifacts import cache_dir, model_fingerprint, write_json
from embedkit.config import EvalOptions, IndexSettings, narrow
from embedkit.data.beir import BeirData, check_judged_documents, load_beir
from embedkit.evaluate.chunking import ChunkedCorpus, max_pool
from embedkit.evaluate.metrics import Run, apply_self_hit_policy, drop_self_hits, evaluate_run, top_k, write_trec_run
from embedkit.index.base import Index

logger = logging.getLogger(__name__)

__all__ = ["EvalOptions", "evaluate", "retrieve", "open_eval_index"]


def _corpus_key(folder: Path) -> str:
    corpus = next((folder / n for n in ("corpus.jsonl", "corpus.jsonl.gz", "corpus.parquet")
                   if (folder / n).is_file()), folder)
    stat = corpus.stat()
    return hashlib.sha256(f"{corpus.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def retrieve(index: Index, queries: dict[str, str], k: int, batch: int = 4096, chunked: bool = False,
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


def open_eval_index(model: str, data: BeirData, options: EvalOptions, scratch: Path,
                    index: IndexSettings | None = None, unpadded: str = "auto",
                    index_dir: str | Path | None = None) -> tuple[Index, dict[str, float]]:
    """An index of ``data``'s corpus for ``model`` (or ``bm25``): ``index_dir`` if given and built already,
    else built once per (model, corpus, settings) under the cache (under ``scratch``, deleted by the caller,
    when the cache is off). The backend comes from ``index`` (default ``auto``)."""
    from embedkit.index import encoders
    from embedkit.index.base import FORMAT_VERSION
    from embedkit.index.build import build_index, open_index
    from embedkit.index.registry import encoder_kind

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    settings = replace(narrow(IndexSettings, index or IndexSettings()), batch_size=options.batch_size, max_length=options.max_length,
                       truncate_dim=options.truncate_dim, precision=options.precision)
    kind = encoder_kind(settings, model, options.kind)
    model = encoders.resolve(kind, model)
    encoder = encoders.load_encoder(kind, model, settings, unpadded)
    corpus = data.corpus
    chunk_tokens = None
    if options.long_documents == "chunk-maxpool" and hasattr(encoder, "model"):
        chunk_tokens = options.max_length or int(encoder.model.max_seq_length)
        corpus = ChunkedCorpus(data.corpus, encoder.model.tokenizer, chunk_tokens)
    if index_dir is not None and (Path(index_dir) / "embedkit-index.json").is_file():
        return open_index(index_dir, model, encoder=encoder), seconds
    if options.use_cache:
        key = json.dumps([asdict(settings), kind, chunk_tokens, FORMAT_VERSION], sort_keys=True)
        tag = hashlib.sha256(key.encode()).hexdigest()[:8]  # readable parts first, for whoever lists the cache
        tag += (f"-len{settings.max_length}" if settings.max_length else "") + \
            (f"-dim{settings.truncate_dim}" if settings.truncate_dim else "")
        index_dir = cache_dir() / "indexes" / f"{kind}-{tag}-{model_fingerprint(model)}-{_corpus_key(data.folder)}"
    else:
        scratch.mkdir(parents=True, exist_ok=True)
        index_dir = Path(tempfile.mkdtemp(prefix="index-", dir=scratch)) / "index"
    if not (options.use_cache and (index_dir / "embedkit-index.json").is_file()):
        build_index(model, corpus, index_dir, settings, kind=kind, encoder=encoder, unpadded=unpadded,
                    overwrite=True, progress=logger.isEnabledFor(logging.INFO))
    seconds["index"] = time.perf_counter() - start
    return open_index(index_dir, model, encoder=encoder), seconds


def evaluate(model: str, data_folder: str | Path, options: EvalOptions | None = None,
             output: str | Path | None = None, run_file: str | Path | None = None,
             dataset_name: str | None = None, labels: dict[str, Any] | None = None,
             index: IndexSettings | None = None, unpadded: str = "auto",
             index_dir: str | Path | None = None) -> dict[str, Any]:
    """nDCG@10, Recall@100, MRR@10, MAP@100 of ``model`` (or ``"bm25"``) on a BEIR folder.

    ``index`` chooses the backend (default ``auto``); ``index_dir`` reuses an index of this corpus built by
    the index stage. ``labels`` are stored in the result as given (e.g. ``{"mldr_setting": "id"}``).
    """
    options = options or EvalOptions()
    data = load_beir(data_folder, options.split)
    coverage = check_judged_documents(data)  # one pass over the corpus before any encoding
    dataset = dataset_name or Path(data_folder).name
    scratch = cache_dir() / "tmp" / f"eval-{os.getpid()}-{time.monotonic_ns()}"
    try:
        found, seconds = open_eval_index(model, data, options, scratch, index, unpadded, index_dir)
        chunked = "#chunks" in found.manifest.corpus  # a ChunkedCorpus: windows of documents
        searcher, queries, retrieve_info = found, data.queries, {}
        if options.retrieve is not None:
            from embedkit.retrieve.evaluation import is_plain, retriever_for_eval

            if not is_plain(options.retrieve):
                searcher, queries, retrieve_info = retriever_for_eval(found, options.retrieve, data.queries,
                                                                      data.qrels, options.batch_size)
        start = time.perf_counter()
        run = retrieve(searcher, queries, options.k + 1, chunked=chunked, drop_self=False)
        run, self_hits = apply_self_hit_policy(run, options.protocol, dataset, options.k)
        seconds["search"] = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    qrels = {q: data.qrels[q] for q in queries if q in data.qrels} if retrieve_info else data.qrels
    result: dict[str, Any] = evaluate_run(qrels, run, per_query=options.per_query)
    from embedkit import __version__
    from embedkit.data.benchmark_sources import read_provenance

    result.update({
        "model": model, "kind": found.manifest.kind, "backend": found.manifest.backend, "dataset": dataset,
        "split": options.split, "num_queries": len(queries), "num_documents": coverage.documents,
        "judged_missing": len(coverage.missing), "protocol": options.protocol, "self_hits": self_hits,
        "dataset_source": read_provenance(data.folder),
        "max_length": options.max_length,
        "long_documents": "chunk-maxpool" if chunked else "truncate" if found.manifest.embedding_dim else "whole",
        "seconds": {k: round(v, 3) for k, v in seconds.items()}, "embedkit_version": __version__,
    } | retrieve_info | (labels or {}))
    if run_file:
        Path(run_file).parent.mkdir(parents=True, exist_ok=True)
        write_trec_run(run, run_file)
    if output:  # last: a results JSON marks a finished evaluation (embedkit run and benchmark runs skip it)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        write_json(output, result)
    return result
