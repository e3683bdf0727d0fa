"""Are these results current? (embedkit.evaluate.settings.results_currency) under each policy: ``embedkit run``
and benchmark runs score again (rebuild); refuse and skip are there for callers that want them."""

from __future__ import annotations

import json
import logging

import pytest

from embedkit.artifacts import Policy, settings_key
from embedkit.config import EvalOptions
from embedkit.errors import EmbedkitError
from embedkit.evaluate.settings import results_currency, run_settings


@pytest.fixture()
def saved(tmp_path):
    settings = run_settings("bm25", EvalOptions(k=10))
    path = tmp_path / "scifact.json"
    path.write_text(json.dumps({"dataset": "scifact", "corpus_fingerprint": "abc", "settings": settings,
                                "settings_key": settings_key(settings)}))
    return path


def test_absent_current_and_the_settings_that_differ(saved, tmp_path):
    assert results_currency(tmp_path / "none.json", {}).absent
    assert results_currency(saved, run_settings("bm25", EvalOptions(k=10)), "abc").current
    deeper = results_currency(saved, run_settings("bm25", EvalOptions(k=20)), "abc")
    assert deeper.differences == ("k: 10 -> 20",)
    assert results_currency(saved, run_settings("bm25", EvalOptions(k=10)), "def").differences == (
        "documents: abc -> def",)
    saved.write_text("{}")
    assert results_currency(saved, {}).differences == ("no dataset or settings_key recorded",)


@pytest.mark.parametrize("policy", list(Policy))
def test_each_policy_on_results_of_other_settings(saved, caplog, policy):
    other = results_currency(saved, run_settings("bm25", EvalOptions(k=20)))
    assert not results_currency(saved, run_settings("bm25", EvalOptions(k=10))).must_make(policy)
    if policy is Policy.REFUSE:
        with pytest.raises(EmbedkitError, match=r"holds results of other settings .*\(k: 10 -> 20\); pass --overwrite"):
            other.must_make(policy)
        return
    with caplog.at_level(logging.INFO, logger="embedkit"):
        assert other.must_make(policy, then="scoring again") is (policy is Policy.REBUILD)
    assert "k: 10 -> 20" in caplog.text
