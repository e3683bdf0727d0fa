"""The first-use self-check of the packed forward: a fault in it never reaches the embeddings."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

import embedkit.models.packed.forward as forward_module
from embedkit.errors import EmbedkitError
from embedkit.models.packed import selfcheck
from embedkit.models.packed.swap import PackedModernBert, enable_packed
from embedkit.models.packed.texts import encode_packed

pytestmark = pytest.mark.packed


def _no_rotary(x, cos, sin):
    """A plausible bug: rotary positions forgotten (outputs stay finite and look fine)."""
    return x


@pytest.fixture
def model(st_reference):
    """A copy without a cached check result (other tests run the shared model through the packed path)."""
    model = copy.deepcopy(st_reference)
    model[0].auto_model.__dict__.pop(selfcheck._CACHE_ATTR, None)
    return model


@pytest.fixture
def expected(st_reference, texts):
    return st_reference.encode(texts, batch_size=4)


def _auto_wrapper(model) -> None:
    """What ``packed: auto`` installs."""
    assert enable_packed(model, mode="auto")
    assert isinstance(model[0].auto_model, PackedModernBert) and not model[0].auto_model.strict


def test_check_inputs_exceed_the_local_window(st_reference):
    hf = st_reference[0].auto_model
    lengths = selfcheck.check_lengths(hf)
    assert max(lengths) > hf.config.local_attention and len(set(lengths)) == len(lengths)


def test_passing_check_runs_once_and_keeps_the_packed_path(model, texts, expected, monkeypatch):
    calls = []
    real = selfcheck.run_self_check
    monkeypatch.setattr(selfcheck, "run_self_check", lambda *a: calls.append(1) or real(*a))
    assert enable_packed(model, mode="on")
    for _ in range(2):
        np.testing.assert_allclose(model.encode(texts, batch_size=4), expected, atol=1e-4, rtol=1e-4)
    assert len(calls) == 1
    (result,) = model[0].auto_model.hf_model.__dict__[selfcheck._CACHE_ATTR].values()
    assert result.ok and result.max_error < 1e-4


def test_fault_falls_back_to_hf_with_one_warning(model, texts, expected, monkeypatch, caplog):
    monkeypatch.setattr(forward_module, "_rotate", _no_rotary)
    _auto_wrapper(model)
    with caplog.at_level(logging.WARNING, logger="embedkit.models.selfcheck"):
        first = model.encode(texts, batch_size=4)
        second = model.encode(texts[:3], batch_size=4)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "differs from Hugging Face" in warnings[0].getMessage()
    np.testing.assert_allclose(first, expected, atol=1e-6, rtol=1e-6)  # HF's own forward, not the faulty one
    np.testing.assert_allclose(second, expected[:3], atol=1e-6, rtol=1e-6)


def test_fault_is_an_error_when_packed_is_on(model, texts, monkeypatch):
    monkeypatch.setattr(forward_module, "_rotate", _no_rotary)
    assert enable_packed(model, mode="on")
    with pytest.raises(EmbedkitError, match="packed: on.*relative error"):
        model.encode(texts)


def test_a_crashing_packed_path_falls_back_too(model, texts, expected, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(forward_module, "_forward_packed", broken)
    _auto_wrapper(model)
    with caplog.at_level(logging.WARNING, logger="embedkit.models.selfcheck"):
        got = model.encode(texts, batch_size=4)
    assert "no kernel image" in caplog.text
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=1e-6)


def test_encode_packed_falls_back_or_raises(model, texts, expected, monkeypatch):
    monkeypatch.setattr(forward_module, "_rotate", _no_rotary)
    with pytest.raises(EmbedkitError):
        encode_packed(model, texts, strict=True)
    np.testing.assert_allclose(encode_packed(model, texts), expected, atol=1e-5, rtol=1e-5)
