"""Is this index current? (embedkit.index.current.index_currency) under the policy of each caller: the
``embedkit index`` command refuses, ``embedkit run`` rebuilds, a stage that keeps what it finds skips."""

from __future__ import annotations

import json
import logging

import pytest

from embedkit.artifacts import Policy
from embedkit.config import IndexSettings
from embedkit.data.corpus import Corpus
from embedkit.errors import EmbedkitError
from embedkit.index.build import build_index
from embedkit.index.current import index_currency

BM25 = IndexSettings(backend="bm25")


@pytest.fixture()
def bm25_index(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"document number {i}"}) + "\n"
                              for i in range(5)), encoding="utf-8")
    build_index(None, Corpus(str(corpus)), tmp_path / "index", BM25, progress=False)
    return tmp_path / "index", corpus


def test_absent_current_and_each_difference_by_key(bm25_index, tmp_path):
    folder, corpus = bm25_index
    assert index_currency(tmp_path / "nothing", None, Corpus(str(corpus)), BM25).absent
    assert index_currency(folder, None, Corpus(str(corpus)), BM25).current
    longer = IndexSettings(backend="bm25", max_length=32)
    assert index_currency(folder, None, Corpus(str(corpus)), longer).differences == ("max_length: null -> 32",)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"_id": "x", "text": "something else"}) + "\n", encoding="utf-8")
    assert index_currency(folder, None, Corpus(str(other)), BM25).differences == (
        f"documents: {other} holds other documents than the index",)


@pytest.mark.parametrize("policy", list(Policy))
def test_each_policy_on_an_index_built_otherwise(bm25_index, caplog, policy):
    folder, corpus = bm25_index
    currency = index_currency(folder, None, Corpus(str(corpus)), IndexSettings(backend="bm25", max_length=32))
    assert not index_currency(folder, None, Corpus(str(corpus)), BM25).must_make(policy)  # current: kept
    if policy is Policy.REFUSE:  # embedkit index: which keys differ, and what to do
        with pytest.raises(EmbedkitError, match=r"already holds another index \(max_length: null -> 32\); pass "
                                                r"--overwrite to replace it, or choose another --index-dir"):
            currency.must_make(policy)
        return
    with caplog.at_level(logging.INFO, logger="embedkit"):
        made = currency.must_make(policy, then="what happens next")
    assert made is (policy is Policy.REBUILD)  # embedkit run rebuilds; skip keeps it as it is
    assert "max_length: null -> 32" in caplog.text and "what happens next" in caplog.text
