"""Packed ColBERT documents for both libraries, each equal to the library's own document encoding."""

from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from embedkit.models.packed.documents import (
    PackedDocumentEncoder,
    encode_packed_documents,
    pylate_documents,
    sentence_transformers_documents,
)
from embedkit.models.packed.swap import PackedModernBert, enable_packed
from tests.helpers import import_pylate

pytestmark = pytest.mark.packed
MAX_LEN = 40


@pytest.fixture
def doc_texts(texts):
    """Code longer than the document length, docstrings, punctuation for the skiplist, stray whitespace."""
    return texts + ["a, b. c; (d)!", "x" * 3, "  padded text  "]


def _assert_same_vectors(got, expected):
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, e, atol=1e-4, rtol=1e-4)


def test_multivector_encoder_documents_match_encode_document(multivector_encoder, doc_texts):
    model = copy.deepcopy(multivector_encoder)
    expected = multivector_encoder.encode_document(doc_texts, convert_to_numpy=True, batch_size=5)
    assert min(len(e) for e in expected) < max(len(e) for e in expected) <= MAX_LEN  # truncated and skiplisted
    side = sentence_transformers_documents(model)
    assert side.text.prompt == "d: " and side.text.max_length == MAX_LEN
    got = encode_packed_documents(model, doc_texts, side, max_tokens_per_batch=64)  # several batches
    _assert_same_vectors(got, expected)


def test_multivector_encoder_with_the_wrapper_swapped_in(multivector_encoder, doc_texts):
    """enable_packed on a MultiVectorEncoder: its own encode (queries with expansion, documents) is unchanged
    and really runs packed; packed documents through the same model agree too."""
    from embedkit.models.colbert import library_of

    model = copy.deepcopy(multivector_encoder)
    assert library_of(model).padded_query_length(model) == 0  # no query expansion here: every batch runs packed
    assert enable_packed(model, mode="on", padded_fallback=library_of(model).padded_query_length(model))
    wrapper = model[0].auto_model
    assert isinstance(wrapper, PackedModernBert)
    for encode in ("encode_query", "encode_document"):
        expected = getattr(multivector_encoder, encode)(doc_texts, convert_to_numpy=True, batch_size=5)
        before = wrapper.packed_calls
        _assert_same_vectors(getattr(model, encode)(doc_texts, convert_to_numpy=True, batch_size=5), expected)
        assert wrapper.packed_calls > before
    encoder = PackedDocumentEncoder(model, sentence_transformers_documents(model), max_tokens=64, strict=True)
    _assert_same_vectors(encoder.encode(doc_texts), multivector_encoder.encode_document(doc_texts,
                                                                                       convert_to_numpy=True))


def test_pylate_documents_match_encode(sharp_modernbert, doc_texts):
    pylate_models = import_pylate("pylate.models")
    reference = pylate_models.ColBERT(str(sharp_modernbert), device="cpu", document_length=MAX_LEN)
    expected = reference.encode(doc_texts, is_query=False, batch_size=5)
    model = copy.deepcopy(reference)
    side = pylate_documents(model)
    assert side.text.insert_id == model.document_prefix_id and side.normalize and side.skiplist
    _assert_same_vectors(encode_packed_documents(model, doc_texts, side, max_tokens_per_batch=64), expected)


def test_a_wrong_side_falls_back_or_raises(multivector_encoder, doc_texts, caplog):
    """A side that does not describe the library (here: no skiplist mask) is caught by the first-use check:
    auto gives the library's own vectors with one warning, strict raises."""
    model = copy.deepcopy(multivector_encoder)
    side = sentence_transformers_documents(model)
    wrong = dataclasses.replace(side, name="wrong side",
                                modules=[(m, k) for m, k in side.modules if type(m).__name__ != "MultiVectorMask"])
    with pytest.raises(EmbedkitError, match="wrong side"):
        PackedDocumentEncoder(model, wrong, strict=True).encode(doc_texts)
    wrong = dataclasses.replace(wrong, name="wrong side, auto")
    with caplog.at_level(logging.WARNING):
        got = PackedDocumentEncoder(model, wrong).encode(doc_texts)
    assert "wrong side, auto differ from the library's" in caplog.text
    _assert_same_vectors(got, multivector_encoder.encode_document(doc_texts, convert_to_numpy=True))
