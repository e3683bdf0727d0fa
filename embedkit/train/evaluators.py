"""Evaluation during training: nDCG@10 on a small BEIR folder, logged beside the loss.

One evaluator per kind (sentence-transformers' for dense, the ColBERT library's for ColBERT); each training kind
names its own (embedkit.train.run.KINDS), so nothing here branches on the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from embedkit.config import Recipe

# (recipe, queries, corpus, relevant documents per query) -> an evaluator with ``primary_metric`` set
EvaluatorFactory = Callable[[Recipe, dict[str, str], dict[str, str], dict[str, set[str]]], Any]

METRICS = dict(ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[1, 10], precision_recall_at_k=[10, 100], map_at_k=[100])


def dense_evaluator(recipe: Recipe, queries: dict[str, str], corpus: dict[str, str],
                    relevant: dict[str, set[str]]) -> Any:
    """sentence-transformers' IR evaluator with the recipe's prompts; primary metric ``<similarity>_ndcg@10``."""
    from sentence_transformers.evaluation import InformationRetrievalEvaluator

    m = recipe.model
    evaluator = InformationRetrievalEvaluator(
        queries=queries, corpus=corpus, relevant_docs=relevant, name="", **METRICS,
        query_prompt=m.query_prompt or None, corpus_prompt=m.document_prompt or None,
        main_score_function=m.similarity, batch_size=recipe.eval.batch_size, show_progress_bar=False)
    # Known before the first evaluation (sentence-transformers sets it lazily), so the trainer can
    # keep the best checkpoint by it: logged as eval_cosine_ndcg@10 (or eval_dot_ndcg@10).
    evaluator.primary_metric = f"{m.similarity}_ndcg@10"
    return evaluator


def colbert_evaluator(recipe: Recipe, queries: dict[str, str], corpus: dict[str, str],
                      relevant: dict[str, set[str]]) -> Any:
    """The ColBERT library's IR evaluator (exact MaxSim over the whole small corpus, with the library's scoring
    function); primary metric maxsim_ndcg@10."""
    from embedkit.models.colbert import get_library

    evaluator = get_library(recipe.colbert.library).ir_evaluator(queries, corpus, relevant,
                                                                 batch_size=recipe.eval.batch_size, metrics=METRICS)
    evaluator.primary_metric = "maxsim_ndcg@10"  # known before the first evaluation, as for dense
    return evaluator


def during_training_evaluator(recipe: Recipe, factory: EvaluatorFactory) -> Any:
    """``factory``'s evaluator over ``eval.during_training``, or None when the recipe sets none."""
    if not recipe.eval.during_training:
        return None
    from embedkit.data.beir import load_beir

    data = load_beir(recipe.eval.during_training, recipe.eval.split)
    corpus = dict(iter(data.corpus))
    relevant = {qid: {d for d, s in docs.items() if s > 0} for qid, docs in data.qrels.items()}
    return factory(recipe, data.queries, corpus, relevant)


def sparse_evaluator(recipe: Recipe, queries: dict[str, str], corpus: dict[str, str],
                     relevant: dict[str, set[str]]) -> Any:
    """sentence-transformers' sparse IR evaluator (dot product over the whole small corpus); primary metric
    dot_ndcg@10."""
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    m = recipe.model
    evaluator = SparseInformationRetrievalEvaluator(
        queries=queries, corpus=corpus, relevant_docs=relevant, name="", **METRICS,
        query_prompt=m.query_prompt or None, corpus_prompt=m.document_prompt or None,
        batch_size=recipe.eval.batch_size, show_progress_bar=False, write_csv=False)
    evaluator.primary_metric = "dot_ndcg@10"  # known before the first evaluation, as for dense
    return evaluator
