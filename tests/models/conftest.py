"""Fixtures of the packed-ModernBERT tests: a tiny ModernBERT whose attention depends on positions, texts
that mix lengths, and a SentenceTransformer on it."""

from __future__ import annotations

import pytest
import torch

MAX_LEN = 40  # > local_attention (8) of the tiny model, so the ±4 sliding window matters
QKV_SCALE = 10.0  # random init gives near-uniform attention, blind to RoPE (a wrong theta moves outputs by 5e-5)


@pytest.fixture(scope="session")
def max_len() -> int:
    return MAX_LEN


@pytest.fixture(scope="session")
def sharp_modernbert(tiny_modernbert, tmp_path_factory):
    """The tiny ModernBERT with ``Wqkv`` scaled up so attention is peaked and positions matter
    (a wrong RoPE theta then moves outputs by ~5e-2, far above the 1e-4 tolerance)."""
    from transformers import AutoTokenizer, ModernBertModel

    model = ModernBertModel.from_pretrained(tiny_modernbert)
    with torch.no_grad():
        for layer in model.layers:
            layer.attn.Wqkv.weight.mul_(QKV_SCALE)
    path = tmp_path_factory.mktemp("sharp-modernbert")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_modernbert).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def texts(code_pairs) -> list[str]:
    """Short docstrings and long code, interleaved so that every batch mixes lengths."""
    out = []
    for p in code_pairs[:8]:
        out += [p.query, p.code]
    return out


@pytest.fixture(scope="session")
def st_reference(sharp_modernbert):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(sharp_modernbert), device="cpu")
    model.max_seq_length = MAX_LEN
    return model


