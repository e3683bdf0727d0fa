"""Rerankers on real encoders: ColBERT MaxSim from stored vectors equals MaxSim of vectors encoded at query
time and the exact index's own scores; a CrossEncoder's order is its predicted order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.config import RetrieveConfig
from embedkit.errors import EmbedkitError
from embedkit.retrieve.rerank import ColbertReranker, CrossEncoderReranker, StoredTokens, load_reranker
from embedkit.retrieve.retriever import RerankedSearcher, compose, method_name


@pytest.mark.colbert
def test_library_maxsim_pads_documents_of_different_lengths(colbert_library):
    """The rerankers' MaxSim (the ColBERT library's scoring) on documents of 1, 5 and 3 tokens."""
    from embedkit.index.maxsim import maxsim_scores

    rng = np.random.default_rng(0)
    query = rng.normal(size=(4, 8)).astype(np.float32)
    docs = [rng.normal(size=(n, 8)).astype(np.float32) for n in (1, 5, 3)]
    expected = maxsim_scores(query[None], np.concatenate(docs), np.array([1, 5, 3]))[0]
    np.testing.assert_allclose(colbert_library.maxsim(query, docs), expected, rtol=1e-5)


@pytest.mark.colbert
def test_colbert_rerank_stored_equals_encoded(tiny_indexes, tiny_modernbert, code_pairs):
    from embedkit.config import EncodeSettings
    from embedkit.index.build import open_index
    from embedkit.index.encoders import load_encoder

    dense_dir, colbert_dir = tiny_indexes
    dense = open_index(dense_dir, settings=EncodeSettings(batch_size=16))
    colbert = open_index(colbert_dir, settings=EncodeSettings(batch_size=16))
    queries = [p.query for p in code_pairs[:3]]
    stored = compose(dense, RetrieveConfig(rerank="colbert", rerank_index=str(colbert_dir), rerank_top_n=20))
    encoder = load_encoder("colbert", str(tiny_modernbert), EncodeSettings(batch_size=8, max_length=64))  # as built
    encoded = RerankedSearcher(dense, ColbertReranker(encoder, None, batch_size=8), top_n=20)
    assert method_name(stored) == "colbert-rerank(dense)"
    s_scores, s_pos = stored.search_positions(queries, 20)
    e_scores, e_pos = encoded.search_positions(queries, 20)
    np.testing.assert_allclose(s_scores, e_scores, rtol=2e-2, atol=2e-2)  # stored vectors are float16
    # the reranked order is the exact ColBERT index's order restricted to the dense top 20
    full_scores, full_pos = colbert.search_positions(queries, 80)
    for row in range(len(queries)):
        candidates = set(s_pos[row].tolist())
        exact = [p for p in full_pos[row].tolist() if p in candidates]
        ranked = s_pos[row].tolist()
        assert sorted(ranked) == sorted(candidates)
        top = dict(zip(full_pos[row], full_scores[row]))
        np.testing.assert_allclose([top[p] for p in ranked], s_scores[row], rtol=1e-4, atol=1e-4)
        assert ranked[0] == exact[0]
    assert len(StoredTokens(colbert_dir)) == 80


def test_cross_encoder_order_is_its_prediction(tiny_indexes, tiny_modernbert, code_pairs):
    from sentence_transformers import CrossEncoder

    from embedkit.config import EncodeSettings
    from embedkit.index.build import open_index

    dense = open_index(tiny_indexes[0], settings=EncodeSettings(batch_size=16))
    model = CrossEncoder(str(tiny_modernbert), num_labels=1)  # random head: any order, but its own
    reranked = RerankedSearcher(dense, CrossEncoderReranker(model, batch_size=8), top_n=10)
    query = code_pairs[5].query
    hits = reranked.search([query], k=10)[0]
    predicted = model.predict([(query, h.text) for h in hits], batch_size=8)  # batched (padded) as the reranker
    scores = [h.score for h in hits]
    assert all(a >= b for a, b in zip(scores, scores[1:]))  # ranked by the cross-encoder's scores...
    np.testing.assert_allclose(scores, predicted, rtol=1e-4, atol=1e-5)  # ...which are its predictions


def test_reranker_errors(tiny_indexes):
    dense_dir, _ = tiny_indexes
    with pytest.raises(EmbedkitError, match="unknown reranker"):
        load_reranker("monot5")
    with pytest.raises(EmbedkitError, match="needs rerank_model"):
        load_reranker("colbert")
    with pytest.raises(EmbedkitError, match="built with --backend exact"):
        StoredTokens(dense_dir)


@pytest.mark.colbert
def test_search_cli_fuses_and_reranks(tiny_indexes, code_pairs, capsys):
    from embedkit.cli import main

    dense_dir, colbert_dir = tiny_indexes
    argv = ["search", "--index-dir", str(dense_dir), "--json", "-k", "4", "--fuse-with", "bm25",
            "--rerank", "colbert", "--rerank-index", str(colbert_dir), "--rerank-top-n", "8", code_pairs[2].query]
    assert main(argv) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert len(hits) == 4 and hits[0]["score"] >= hits[-1]["score"]
    assert main(["search", "--index-dir", str(dense_dir), "q", "--fuse-with", "nowhere"]) == 2
    assert "neither 'bm25' nor an index folder" in capsys.readouterr().err


def test_rerankers_for_request_texts_read_no_stored_vectors():
    """``embedkit serve``'s /rerank scores a request's own texts: a ColBERT reranker over an index's stored
    vectors is replaced by one that encodes them; a reranker that reads texts is itself."""
    encoder, stored = object(), object()
    for_texts = ColbertReranker(encoder, stored, batch_size=4).for_texts()
    assert for_texts.stored is None and for_texts.encoder is encoder and for_texts.batch_size == 4
    plain = ColbertReranker(encoder, None)
    assert plain.for_texts() is plain
    cross = CrossEncoderReranker(object())
    assert cross.stored is None and cross.for_texts() is cross
