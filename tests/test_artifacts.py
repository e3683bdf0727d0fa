"""The one answer to "is this output current?" (embedkit.artifacts.Currency) under each caller's policy."""

from __future__ import annotations

import logging

import pytest

from embedkit.artifacts import Currency, Policy, recorded_differences
from embedkit.errors import EmbedkitError

ABSENT = Currency("out", None)
CURRENT = Currency("out", ())
STALE = Currency("out", ("k: 10 -> 20",), "holds other results", "pass --overwrite")


@pytest.mark.parametrize("policy", list(Policy))
def test_an_absent_output_is_made_and_a_current_one_kept_whatever_the_policy(policy):
    assert ABSENT.absent and not ABSENT.current and ABSENT.must_make(policy)
    assert CURRENT.current and not CURRENT.absent and not CURRENT.must_make(policy)
    assert CURRENT.must_make(policy, overwrite=True) and STALE.must_make(policy, overwrite=True)


def test_refuse_names_the_differences_and_the_way_out():
    with pytest.raises(EmbedkitError, match=r"^out holds other results \(k: 10 -> 20\); pass --overwrite$"):
        STALE.must_make(Policy.REFUSE)


def test_rebuild_logs_the_differences_and_makes_it_again(caplog):
    with caplog.at_level(logging.INFO, logger="embedkit"):
        assert STALE.must_make(Policy.REBUILD, then="scoring again")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "out holds other results (k: 10 -> 20); scoring again")]


def test_skip_warns_and_keeps_it(caplog):
    with caplog.at_level(logging.INFO, logger="embedkit"):
        assert not STALE.must_make(Policy.SKIP, then="used as it is")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "out holds other results (k: 10 -> 20); used as it is")]


def test_many_differences_are_cut_short_with_a_count():
    many = Currency("out", tuple(f"key{i}: 0 -> 1" for i in range(9)))
    assert many.shown().endswith("key5: 0 -> 1; and 3 more")


def test_recorded_differences_fill_defaults_on_both_sides():
    defaults = {"quantization": "none", "k": 10}
    assert recorded_differences({"k": 10}, {"k": 10, "quantization": "none"}, defaults) == ()
    assert recorded_differences({"k": 10}, {"k": 10, "quantization": "binary"}, defaults) == (
        "quantization: none -> binary",)
