"""Evaluation during training: nDCG@10 on a small BEIR folder, logged beside the loss."""

from __future__ import annotations

from typing import Any

from embedkit.config import Recipe


def during_training_evaluator(recipe: Recipe, kind: str) -> Any:
    """An InformationRetrievalEvaluator (dense) over ``eval.during_training``, or None."""
    if not recipe.eval.during_training:
        return None
    from embedkit.data.beir import load_beir

    data = load_beir(recipe.eval.during_training, recipe.eval.split)
    corpus = dict(iter(data.corpus))
    relevant = {qid: {d for d, s in docs.items() if s > 0} for qid, docs in data.qrels.items()}
    if kind == "dense":
        from sentence_transformers.evaluation import InformationRetrievalEvaluator

        m = recipe.model
        evaluator = InformationRetrievalEvaluator(
            queries=data.queries, corpus=corpus, relevant_docs=relevant, name="", ndcg_at_k=[10],
            mrr_at_k=[10], accuracy_at_k=[1, 10], precision_recall_at_k=[10, 100], map_at_k=[100],
            query_prompt=m.query_prompt or None, corpus_prompt=m.document_prompt or None,
            main_score_function=m.similarity, batch_size=recipe.eval.batch_size, show_progress_bar=False)
        # Known before the first evaluation (sentence-transformers sets it lazily), so the trainer can
        # keep the best checkpoint by it: logged as eval_cosine_ndcg@10 (or eval_dot_ndcg@10).
        evaluator.primary_metric = f"{m.similarity}_ndcg@10"
        return evaluator
    from embedkit.train.colbert import colbert_evaluator

    return colbert_evaluator(recipe, data.queries, corpus, relevant)
