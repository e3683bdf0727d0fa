"""Batches of nearly equal token length give exactly sentence-transformers' ``encode`` embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from embedkit.models import sorted_batches, token_budget
from embedkit.models.dense import DenseEncoder, load_dense_model
from embedkit.models.sorted_batches import can_sort, encode_sorted


@pytest.fixture(scope="module")
def mixed(code_pairs) -> list[str]:
    """Docstrings and code interleaved: more texts than one chunk of batches of 4."""
    out = []
    for p in code_pairs[:60]:
        out += [p.query, p.code]
    return out


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of 16 batches, so that the fixture's texts make several (the next tokenised ahead)."""
    monkeypatch.setattr(sorted_batches, "CHUNK_BATCHES", 16)


def _recording(model, monkeypatch) -> list[dict]:
    """The features of every batch ``model`` runs from now on."""
    batches: list[dict] = []
    forward = model.forward

    def record(features, **kwargs):
        batches.append(features)
        return forward(features, **kwargs)

    monkeypatch.setattr(model, "forward", record)
    return batches


@pytest.fixture(scope="module")
def minilm(minilm_path) -> SentenceTransformer:
    return SentenceTransformer(minilm_path, device="cpu")


@pytest.mark.parametrize(("prompt", "normalize", "truncate_dim"), [(None, False, None), ("query: ", True, None),
                                                                    (None, True, 128)])
def test_equals_encode(minilm, mixed, prompt, normalize, truncate_dim):
    assert len(mixed) > 4 * sorted_batches.CHUNK_BATCHES  # several chunks, the next tokenised ahead
    expected = minilm.encode(mixed, prompt=prompt, batch_size=4, normalize_embeddings=normalize,
                             truncate_dim=truncate_dim)
    got = encode_sorted(minilm, mixed, prompt, batch_size=4, normalize=normalize, truncate_dim=truncate_dim)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_each_batch_is_padded_to_its_longest_text_only(minilm, mixed, monkeypatch):
    batches = _recording(minilm, monkeypatch)
    encode_sorted(minilm, mixed, batch_size=4)
    widths = [f["input_ids"].shape[1] for f in batches]
    longest = [int(f["attention_mask"].sum(dim=1).max()) for f in batches]
    assert widths == longest and len(widths) == -(-len(mixed) // 4)
    # sorted by tokens within each chunk: batches get shorter through a chunk
    per_chunk = sorted_batches.CHUNK_BATCHES
    assert all(widths[i] >= widths[i + 1] for i in range(per_chunk - 1))


def test_left_padding_keeps_encode(minilm_path, mixed):
    """Left padding shifts absolute positions by the batch's padding: only encode's own batches give its output."""
    model = SentenceTransformer(minilm_path, device="cpu")
    model.tokenizer.padding_side = "left"
    assert not can_sort(model)
    encoder = DenseEncoder(model, batch_size=6)
    np.testing.assert_allclose(encoder.encode_documents(mixed[:12]), model.encode(mixed[:12], batch_size=6,
                                                                                  normalize_embeddings=True),
                               atol=1e-6)


def test_dense_encoder_uses_it_for_a_modernbert_not_packed(tiny_modernbert, mixed):
    model = load_dense_model(str(tiny_modernbert))
    assert can_sort(model)
    encoder = DenseEncoder(model, batch_size=5, packed="off")
    expected = model.encode(mixed, batch_size=5, normalize_embeddings=encoder.normalize)
    np.testing.assert_allclose(encoder.encode_documents(mixed), expected, atol=1e-5)
    assert encoder.encode_documents([]).shape[0] == 0


def test_max_tokens_caps_each_batch_and_keeps_the_embeddings(minilm, mixed, monkeypatch):
    expected = minilm.encode(mixed, batch_size=8)
    batches = _recording(minilm, monkeypatch)
    got = encode_sorted(minilm, mixed, batch_size=8, max_tokens=160)
    shapes = [tuple(f["input_ids"].shape) for f in batches]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sum(rows for rows, _ in shapes) == len(mixed)
    assert all(rows * width <= 160 or rows == 1 for rows, width in shapes)  # a text longer than the budget: alone
    assert any(rows == 1 and width > 160 for rows, width in shapes) and any(rows == 8 for rows, _ in shapes)


def test_dense_encoder_caps_cpu_batches_by_tokens(minilm_path, mixed, monkeypatch):
    model = load_dense_model(minilm_path)
    encoder = DenseEncoder(model, batch_size=16)
    expected = model.encode(mixed, batch_size=16, normalize_embeddings=encoder.normalize)
    monkeypatch.setattr(token_budget, "ACTIVATION_BYTES", 1536 * 4 * 100)  # 100 tokens a batch
    batches = _recording(model, monkeypatch)
    np.testing.assert_allclose(encoder.encode_documents(mixed), expected, atol=1e-5)
    shapes = [tuple(f["input_ids"].shape) for f in batches]
    assert max(rows * width for rows, width in shapes if rows > 1) <= 100 and len(shapes) > len(mixed) // 16


def test_dense_encoder_works_the_budget_out_again_when_the_weights_change(minilm_path):
    from embedkit.models.precision import cast_to_bf16
    from embedkit.models.token_budget import cpu_token_budget

    model = load_dense_model(minilm_path)
    encoder = DenseEncoder(model)
    fp32 = encoder._token_budget()
    assert fp32 == cpu_token_budget(model)
    cast_to_bf16(model)
    assert encoder._token_budget() == cpu_token_budget(model) > fp32  # bf16: half the bytes a token
