"""Score a model on a BEIR-format folder: index (cached) → search → pytrec_eval → results JSON."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedkit.artifacts import model_fingerprint, write_json
from embedkit.data.beir import BeirData, check_qrels_documents, load_beir
from embedkit.evaluate.chunking import ChunkedCorpus, base_id, max_pool
from embedkit.evaluate.metrics import Run, drop_self_hits, evaluate_run, top_k, write_trec_run
from embedkit.index.base import Index

logger = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("EMBEDKIT_CACHE", Path.home() / ".cache" / "embedkit"))


@dataclass
class EvalOptions:
    kind: str | None = None          # dense | colbert | None (from the model folder)
    split: str = "test"
    k: int = 100
    batch_size: int = 64
    exact: bool = False              # colbert: brute-force MaxSim instead of PLAID
    use_cache: bool = True
    unpadded: str = "auto"
    max_length: int | None = None    # override the model's maximum sequence length
    truncate_dim: int | None = None  # dense Matryoshka models: score with the first N dimensions
    long_documents: str = "truncate"
    per_query: bool = False
    retrieve: Any = None              # embedkit.config.RetrieveConfig: fusion / reranking of the evaluated index


def _corpus_key(folder: Path) -> str:
    corpus = next((folder / n for n in ("corpus.jsonl", "corpus.jsonl.gz", "corpus.parquet")
                   if (folder / n).is_file()), folder)
    stat = corpus.stat()
    return hashlib.sha256(f"{corpus.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def retrieve(index: Index, queries: dict[str, str], k: int, batch: int = 4096, chunked: bool = False) -> Run:
    """Top-k per query, with self-hits (query id == document id) removed before cutting to k.

    ``chunked``: the index holds windows of documents; 4·k windows are fetched and each document
    keeps its best window's score.
    """
    qids = list(queries)
    run: Run = {}
    ids = index.store.ids
    depth = 4 * k if chunked else k + 1
    for start in range(0, len(qids), batch):
        chunk = qids[start:start + batch]
        scores, positions = index.search_positions([queries[q] for q in chunk], depth)
        for qid, row_s, row_p in zip(chunk, scores, positions):
            run[qid] = {ids[p]: float(s) for s, p in zip(row_s, row_p) if p >= 0}
    if chunked:
        run = max_pool(run)
    return top_k(drop_self_hits(run), k)


def open_eval_index(model: str, data: BeirData, options: EvalOptions,
                    scratch: Path) -> tuple[Index, dict[str, float]]:
    """BM25 in memory, or a neural index built once per (model, corpus) under the cache
    (under ``scratch``, deleted by the caller, when the cache is off)."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if model == "bm25":
        from embedkit.evaluate.bm25 import BM25Index

        index = BM25Index(data.corpus)
        seconds["index"] = time.perf_counter() - start
        return index, seconds
    from embedkit.index.base import FORMAT_VERSION
    from embedkit.index.build import BuildOptions, build_index, detect_kind, get_backend, open_index
    from embedkit.models.loading import resolve_model

    model = resolve_model(model)
    kind = options.kind or detect_kind(model)
    encoder = get_backend(kind).load_encoder(model, options.batch_size, options.unpadded, options.max_length)
    tag = ("exact" if options.exact else "default") + (f"-len{options.max_length}" if options.max_length else "")
    tag += f"-dim{options.truncate_dim}" if options.truncate_dim else ""
    corpus = data.corpus
    if options.long_documents == "chunk-maxpool":
        max_tokens = options.max_length or int(encoder.model.max_seq_length)
        corpus = ChunkedCorpus(data.corpus, encoder.model.tokenizer, max_tokens)
        tag += "-chunks"
    if options.use_cache:
        index_dir = cache_root() / "indexes" / (f"{kind}-{tag}-v{FORMAT_VERSION}-{model_fingerprint(model)}-"
                                                 f"{_corpus_key(data.folder)}")
    else:
        scratch.mkdir(parents=True, exist_ok=True)
        index_dir = Path(tempfile.mkdtemp(prefix="index-", dir=scratch)) / "index"
    if not (options.use_cache and (index_dir / "embedkit-index.json").is_file()):
        build_index(model, corpus, index_dir, kind=kind, encoder=encoder,
                    options=BuildOptions(batch_size=options.batch_size, unpadded=options.unpadded, overwrite=True,
                                         max_length=options.max_length, truncate_dim=options.truncate_dim,
                                         backend_options=_backend_options(kind, options)))
    seconds["index"] = time.perf_counter() - start
    return open_index(index_dir, model, encoder=encoder), seconds


def _backend_options(kind: str, options: EvalOptions) -> Any:
    if kind == "dense":
        from embedkit.index.faiss_index import FaissOptions

        return FaissOptions(index_type="flat")
    from embedkit.index.colbert_backend import eval_options

    return eval_options(options.exact)


def evaluate(model: str, data_folder: str | Path, options: EvalOptions | None = None,
             output: str | Path | None = None, run_file: str | Path | None = None,
             dataset_name: str | None = None, labels: dict[str, Any] | None = None) -> dict[str, Any]:
    """nDCG@10, Recall@100, MRR@10, MAP@100 of ``model`` (or ``"bm25"``) on a BEIR folder.

    ``labels`` are stored in the result as given (e.g. ``{"mldr_setting": "id"}`` for the report).
    """
    options = options or EvalOptions()
    data = load_beir(data_folder, options.split)
    scratch = cache_root() / "tmp" / f"eval-{os.getpid()}-{time.monotonic_ns()}"
    try:
        index, seconds = open_eval_index(model, data, options, scratch)
        chunked = options.long_documents == "chunk-maxpool" and model != "bm25"
        document_ids = {base_id(i) for i in index.store.ids} if chunked else set(index.store.ids)
        check_qrels_documents(data, document_ids)
        queries, retrieve_info = data.queries, {}
        if options.retrieve is not None:
            from embedkit.retrieve.evaluation import is_plain, retriever_for_eval

            if not is_plain(options.retrieve):
                index, queries, retrieve_info = retriever_for_eval(index, options.retrieve, data.queries, data.qrels,
                                                                   options.batch_size)
        start = time.perf_counter()
        run = retrieve(index, queries, options.k, chunked=chunked)
        seconds["search"] = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    qrels = {q: data.qrels[q] for q in queries if q in data.qrels} if retrieve_info else data.qrels
    result: dict[str, Any] = evaluate_run(qrels, run, per_query=options.per_query)
    from embedkit import __version__

    result.update({
        "model": model, "kind": index.manifest.kind, "dataset": dataset_name or Path(data_folder).name,
        "split": options.split, "num_queries": len(queries), "num_documents": len(document_ids),
        "max_length": options.max_length,
        "long_documents": options.long_documents if model != "bm25" else "whole",
        "seconds": {k: round(v, 3) for k, v in seconds.items()}, "embedkit_version": __version__,
    } | retrieve_info | (labels or {}))
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        write_json(output, result)
    if run_file:
        write_trec_run(run, run_file)
    return result
