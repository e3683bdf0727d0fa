"""Hard-negative mining: (query, positive) rows → (query, positive, negative_1..n) JSONL for recipes.

Candidates come from a dense model (sentence-transformers' ``mine_hard_negatives``, FAISS search) or
from BM25 (bm25s). Either way the same filters guard against false negatives: only ranks in
``[range_min, range_max)`` are considered, a candidate must score below the positive by a margin and
below ``max_score``, and the query's own positive(s) are never a negative. An optional cross-encoder
rescores the candidates (and the positive) before the filters, as the NV-Retriever paper recommends.
Rows for which fewer than ``num_negatives`` candidates survive are dropped (and counted).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.artifacts import check_apart, check_writable
from embedkit.config import ColumnsConfig, MiningOptions
from embedkit.errors import EmbedkitError
from embedkit.index.registry import NO_MODEL
from embedkit.models.cross_encoder import load_cross_encoder

logger = logging.getLogger(__name__)


@dataclass
class MiningReport:
    output: Path
    rows_in: int
    rows_out: int
    num_negatives: int

    @property
    def dropped(self) -> int:
        return self.rows_in - self.rows_out


# --------------------------------------------------------------------------- pure selection


def select_negatives(ranked: Sequence[int], scores: Sequence[float], positive_score: float,
                     exclude: set[int], options: MiningOptions, rng: random.Random) -> list[int] | None:
    """Pick negatives among one query's candidates, best first; None when too few survive.

    ``ranked``: candidate document positions in rank order; ``scores``: their scores (same order);
    ``exclude``: positions of the query's own positives (never negatives, and not counted as ranks).

    >>> o = MiningOptions(num_negatives=2, range_min=1, range_max=10, absolute_margin=0.1)
    >>> select_negatives([7, 3, 5, 9, 2], [0.9, 0.8, 0.75, 0.5, 0.4], 0.8, {7}, o, random.Random(0))
    [9, 2]
    """
    kept = [(d, s) for d, s in zip(ranked, scores) if d not in exclude]
    kept = kept[options.range_min:options.range_max]
    valid = []
    for doc, score in kept:
        if options.absolute_margin is not None and score > positive_score - options.absolute_margin:
            continue
        if options.relative_margin is not None and score > positive_score * (1 - options.relative_margin):
            continue
        if options.max_score is not None and score > options.max_score:
            continue
        if options.min_score is not None and score < options.min_score:
            continue
        valid.append(doc)
    if len(valid) < options.num_negatives:
        return None
    if options.sampling == "random":
        return rng.sample(valid, options.num_negatives)
    return valid[:options.num_negatives]


# --------------------------------------------------------------------------- candidates


def _unique(texts: list[str]) -> tuple[list[str], dict[str, int]]:
    position: dict[str, int] = {}
    for text in texts:
        position.setdefault(text, len(position))
    return list(position), position


def _mine_bm25(queries: list[str], positives: list[str], corpus: list[str],
               options: MiningOptions) -> list[list[str] | None]:
    """BM25 candidates (bm25s, with the bm25 backend's parameters), optionally rescored by a cross-encoder."""
    import bm25s

    from embedkit.index.bm25_index import STOPWORDS, fit_bm25

    docs, position = _unique(corpus + positives)
    retriever = fit_bm25(docs)
    vocab = retriever.vocab_dict
    query_tokens = bm25s.tokenize(queries, stopwords=STOPWORDS, return_ids=False, show_progress=False)
    positives_of: dict[str, set[int]] = {}
    for q, p in zip(queries, positives):
        positives_of.setdefault(q, set()).add(position[p])
    cross = load_cross_encoder(options.cross_encoder) if options.cross_encoder else None
    depth = min(options.range_max + max(len(s) for s in positives_of.values()), len(docs))
    rng = random.Random(options.seed)
    out: list[list[str] | None] = []
    for query, positive, tokens in zip(queries, positives, query_tokens):
        known = [t for t in tokens if t in vocab]
        scores = retriever.get_scores(known) if known else np.zeros(len(docs))  # (num_docs,)
        top = np.argpartition(-scores, depth - 1)[:depth] if depth < len(docs) else np.arange(len(docs))
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]  # no shared term: not a hard negative, just a random document
        ranked, cand_scores = top.tolist(), scores[top].tolist()
        pos_score = float(scores[position[positive]])
        if cross is not None:
            ranked, cand_scores, pos_score = _rescore(cross, query, positive, ranked, docs, options,
                                                      exclude=positives_of[query])
        chosen = select_negatives(ranked, cand_scores, pos_score, positives_of[query], options, rng)
        out.append(None if chosen is None else [docs[d] for d in chosen])
    return out


def _rescore(cross: Any, query: str, positive: str, ranked: list[int], docs: list[str], options: MiningOptions,
             exclude: set[int]) -> tuple[list[int], list[float], float]:
    """Cross-encoder scores for the candidates in the rank range and for the positive, re-sorted."""
    window = [d for d in ranked if d not in exclude][:options.range_max]
    pairs = [(query, positive)] + [(query, docs[d]) for d in window]
    scores = np.asarray(cross.predict(pairs, batch_size=options.batch_size, show_progress_bar=False),
                        dtype=np.float64).reshape(-1)  # (1 + len(window),)
    order = np.argsort(-scores[1:], kind="stable")
    return [window[i] for i in order], scores[1:][order].tolist(), float(scores[0])


def _mine_dense(dataset: Any, model_name: str, corpus: list[str], options: MiningOptions) -> Any:
    from sentence_transformers.util import mine_hard_negatives

    from embedkit.models.dense import load_dense_model
    from embedkit.models.packed import enable_packed

    model = load_dense_model(model_name)
    enable_packed(model, mode="auto")  # ModernBERT: the packed forward (self-checked) inside ST's encode
    distinct = len(set(corpus) | set(dataset["positive"]))
    if options.range_max > distinct:  # torch.topk needs k <= number of documents
        options = dataclasses.replace(options, range_max=distinct)
    prompts = getattr(model, "prompts", {}) or {}
    cross = load_cross_encoder(options.cross_encoder) if options.cross_encoder else None
    return mine_hard_negatives(
        dataset, model, anchor_column_name="query", positive_column_name="positive",
        corpus=list(corpus) or None, cross_encoder=cross, range_min=options.range_min, range_max=options.range_max,
        max_score=options.max_score, min_score=options.min_score, absolute_margin=options.absolute_margin,
        relative_margin=options.relative_margin, num_negatives=options.num_negatives,
        sampling_strategy=options.sampling, query_prompt_name="query" if "query" in prompts else None,
        corpus_prompt_name="document" if "document" in prompts else None, output_format="n-tuple",
        batch_size=options.batch_size, use_faiss=options.use_faiss, verbose=False)


# --------------------------------------------------------------------------- entry point


def _write_jsonl(rows: list[dict[str, Any]], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, output)


def _write_teacher_scores(rows: list[dict[str, str]], negative_cols: list[str], output: Path,
                          options: MiningOptions) -> None:
    """The distillation layout (queries, documents, train with the cross-encoder's scores of the positive and the
    negatives), written to a temporary sibling and renamed into ``output`` when complete."""
    import shutil

    cross = load_cross_encoder(options.cross_encoder)
    documents: dict[str, str] = {}  # text -> id
    query_ids: dict[str, str] = {}
    lists = []
    for row in rows:
        qid = query_ids.setdefault(row["query"], f"q{len(query_ids)}")
        texts = [row["positive"], *(row[c] for c in negative_cols)]
        lists.append((qid, row["query"], texts, [documents.setdefault(t, f"d{len(documents)}") for t in texts]))
    pairs = [(query, text) for _, query, texts, _ in lists for text in texts]
    scores = np.asarray(cross.predict(pairs, batch_size=options.batch_size, show_progress_bar=False),
                        dtype=np.float64).reshape(len(lists), -1)  # (rows, 1 + num_negatives)
    tmp = output.with_name(f".{output.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_jsonl([{"query_id": qid, "text": q} for q, qid in query_ids.items()], tmp / "queries.jsonl")
    _write_jsonl([{"document_id": did, "text": t} for t, did in documents.items()], tmp / "documents.jsonl")
    _write_jsonl([{"query_id": qid, "document_ids": ids, "scores": [round(float(s), 6) for s in row_scores]}
                  for (qid, _, _, ids), row_scores in zip(lists, scores)], tmp / "train.jsonl")
    os.replace(tmp, output)
    logger.info("teacher scores of %d queries x %d documents (%s) -> %s", len(lists), scores.shape[1],
                options.cross_encoder, output)


def mine(data: str | Path, output: str | Path, model: str, options: MiningOptions | None = None,
         columns: ColumnsConfig | None = None, corpus: list[str] | None = None, subset: str | None = None,
         split: str = "train", max_samples: int | None = None) -> MiningReport:
    """Mine hard negatives for the (query, positive) rows of ``data`` and write them to ``output``.

    ``model`` is a sentence-transformers model (folder or hub id) or ``"bm25"``. Candidates are drawn
    from ``corpus`` plus all positives. Existing negative columns in ``data`` are ignored.
    """
    from embedkit.train.data import read_source, select_columns

    options = options or MiningOptions()
    options.check()
    check_apart(output, "--output", [("--data", data), ("--model", model)])
    check_writable(output, "--output", "folder" if options.teacher_scores else "file")
    if options.teacher_scores and Path(output).exists():
        raise EmbedkitError(f"--output: {output} exists; teacher scores go to a new folder (never over one of yours)")
    columns = columns or ColumnsConfig()
    columns = ColumnsConfig(query=columns.query, positive=columns.positive, negatives=[])
    dataset = read_source(str(data), subset, split)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    dataset = select_columns(dataset, columns, str(data))
    queries, positives = list(dataset["query"]), list(dataset["positive"])
    if len(set(positives) | set(corpus or [])) <= options.range_min + options.num_negatives:
        raise EmbedkitError(f"{data}: {len(set(positives))} distinct documents are too few to mine "
                            f"{options.num_negatives} negatives from ranks {options.range_min}+")
    negative_cols = [f"negative_{i + 1}" for i in range(options.num_negatives)]
    if model == NO_MODEL:
        mined = _mine_bm25(queries, positives, list(corpus or []), options)
        rows = [{"query": q, "positive": p, **dict(zip(negative_cols, negs))}
                for q, p, negs in zip(queries, positives, mined) if negs is not None]
    else:
        result = _mine_dense(dataset, model, list(corpus or []), options)
        rows = [{k: row[k] for k in ("query", "positive", *negative_cols)} for row in result]
    output = Path(output)
    if rows and options.teacher_scores:
        _write_teacher_scores(rows, negative_cols, output, options)
        return MiningReport(output, len(queries), len(rows), options.num_negatives)
    if not rows:
        raise EmbedkitError(f"{data}: no row kept {options.num_negatives} negatives; widen the rank range "
                            "(range_max) or loosen the margin / max_score")
    _write_jsonl(rows, output)
    report = MiningReport(output, len(queries), len(rows), options.num_negatives)
    logger.info("mined %d negatives for %d of %d rows -> %s (%d rows dropped: too few valid candidates)",
                options.num_negatives, report.rows_out, report.rows_in, output, report.dropped)
    return report
