"""Fast tokenisation gives the library's own token ids (prompt, whitespace, truncation), or is not used."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from embedkit.models.packed.texts import dense_text_side, encode_packed
from embedkit.models.packed.tokenizing import check_tokens

pytestmark = pytest.mark.packed


@pytest.fixture(scope="module")
def bpe_st(bpe_modernbert):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bpe_modernbert), device="cpu")
    model.max_seq_length = 40
    return model


@pytest.fixture
def ragged_texts(texts):
    """Whitespace around and inside texts: byte-level BPE gives other ids for it, so stripping matters."""
    return [f"  {t} " if i % 2 else t + "\n" for i, t in enumerate(texts)] + ["", "   ", "x"]


def _library_ids(model, texts, prompt=""):
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    features = tokenize([prompt + t for t in texts])
    return [row[mask.bool()].tolist() for row, mask in zip(features["input_ids"], features["attention_mask"])]


@pytest.mark.parametrize("prompt", [None, "search: "])
def test_fast_tokenisation_equals_the_library(bpe_st, ragged_texts, prompt):
    side = dense_text_side(bpe_st, prompt)
    expected = _library_ids(bpe_st, ragged_texts, prompt or "")
    assert max(len(x) for x in expected) == 40  # truncation exercised
    assert side.tokenizer_fn()(ragged_texts) == expected
    assert side.reference_ids(ragged_texts) == expected


def test_lowercasing_wordpiece_model(minilm_path, ragged_texts):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path, device="cpu")
    texts = [t.upper() for t in ragged_texts]
    assert dense_text_side(model, None).tokenizer_fn()(texts) == _library_ids(model, texts)


def test_a_tokenisation_that_differs_is_caught(bpe_st, ragged_texts, caplog):
    side = dense_text_side(bpe_st, None)
    wrong = dataclasses.replace(side, strip=not side.strip)
    assert wrong.tokenizer_fn()(ragged_texts) != side.tokenizer_fn()(ragged_texts)
    with pytest.raises(EmbedkitError, match="tokenises texts differently"):
        check_tokens(side, wrong.tokenizer_fn(), ragged_texts, strict=True)
    with caplog.at_level(logging.WARNING):
        fallback = check_tokens(side, wrong.tokenizer_fn(), ragged_texts, strict=False)
    assert "the library's own tokenisation" in caplog.text
    assert fallback(ragged_texts) == _library_ids(bpe_st, ragged_texts)


def test_packed_encode_of_ragged_texts_equals_encode(bpe_st, ragged_texts):
    expected = bpe_st.encode(ragged_texts, prompt="search: ", batch_size=4)
    got = encode_packed(bpe_st, ragged_texts, prompt="search: ", strict=True, max_tokens_per_batch=64)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
