"""embedkit eval of a sparse model against sentence-transformers' SparseInformationRetrievalEvaluator on the same
data (nDCG@10 within 0.002), the sparsity and size it records, and sparse + dense fusion (RRF)."""

from __future__ import annotations

import time

import pytest

from embedkit.config import EvalOptions, IndexSettings, RetrieveConfig
from embedkit.data.corpus import Corpus
from embedkit.evaluate.runner import evaluate
from embedkit.index.build import build_index
from tests.helpers import write_beir


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, code_pairs):
    """50 queries over 150 code documents (100 of them distractors)."""
    docs = [(p.id, p.code[:400]) for p in code_pairs[:150]]
    queries = [(f"q{i}", p.query) for i, p in enumerate(code_pairs[:50])]
    qrels = [(f"q{i}", p.id, 1) for i, p in enumerate(code_pairs[:50])]
    return write_beir(tmp_path_factory.mktemp("held-out"), docs, queries, qrels)


def test_eval_equals_sparse_ir_evaluator(held_out, sparse_minilm):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    from embedkit.data.beir import load_beir

    start = time.perf_counter()
    result = evaluate(str(sparse_minilm), held_out, EvalOptions(use_cache=False, batch_size=32, k=10))
    ours = time.perf_counter() - start
    data = load_beir(held_out, "test")
    start = time.perf_counter()
    model = SparseEncoder(str(sparse_minilm), device="cpu")
    reference = SparseInformationRetrievalEvaluator(
        queries=data.queries, corpus=dict(iter(data.corpus)),
        relevant_docs={q: {d for d, s in docs.items() if s > 0} for q, docs in data.qrels.items()},
        batch_size=32, write_csv=False)(model)
    theirs = time.perf_counter() - start
    assert result["kind"] == "sparse" and result["backend"] == "sparse-exact"
    assert abs(result["ndcg@10"] - reference["dot_ndcg@10"]) <= 0.002, (result["ndcg@10"], reference)
    assert 0 < result["mean_query_terms"] < 1000 and 0 < result["mean_document_terms"] < 2000
    assert result["index_bytes"] > 0
    print(f"embedkit eval {ours:.1f}s, SparseInformationRetrievalEvaluator {theirs:.1f}s")


def test_sparse_dense_rrf(tmp_path, held_out, sparse_minilm, minilm_path):
    dense = tmp_path / "dense"
    build_index(minilm_path, Corpus(str(held_out)), dense, IndexSettings(batch_size=32), progress=False)
    options = EvalOptions(use_cache=False, batch_size=32, k=10)
    sparse_only = evaluate(str(sparse_minilm), held_out, options)
    dense_only = evaluate(minilm_path, held_out, options)
    fused = evaluate(str(sparse_minilm), held_out,
                     EvalOptions(use_cache=False, batch_size=32, k=10, retrieve=RetrieveConfig(fuse_with=[str(dense)])))
    assert fused["method"] == "rrf(sparse,dense)"
    assert fused["ndcg@10"] > min(sparse_only["ndcg@10"], dense_only["ndcg@10"])
    print({"sparse": sparse_only["ndcg@10"], "dense": dense_only["ndcg@10"], "rrf": fused["ndcg@10"]})
