"""The packed forward serves a sparse (SPLADE) ModernBERT's backbone: swapped in under the MLM head, in the
library's own encode and in training, with the same vectors and gradients as the padded forward; where it has
no place and was insisted on, an error."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from embedkit.config import ModelConfig, SparseConfig
from embedkit.errors import EmbedkitError
from embedkit.models.packed.swap import PackedModernBert, disable_packed, enable_packed, transformer_module, wrapper_of
from embedkit.models.sparse import SparseVectorEncoder, build_sparse_model

# not marked packed: the sparse kind is built on sentence-transformers 6 (its fill-mask Transformer), which
# PyLate's environment (`make test-pylate`) does not have
MAX_LEN = 40  # > the tiny model's local attention (8): the sliding window is exercised


def _sparse_model(path, architecture: str):
    model = build_sparse_model(ModelConfig(name=str(path)), SparseConfig(architecture=architecture))
    model.max_seq_length = MAX_LEN
    return model.eval()


@pytest.fixture(scope="module")
def splade(sharp_modernbert):
    return _sparse_model(sharp_modernbert, "splade")


@pytest.fixture(scope="module")
def inference_free(sharp_modernbert):
    return _sparse_model(sharp_modernbert, "inference-free")


def _vectors(encoder: SparseVectorEncoder, texts: list[str], queries: bool = False) -> np.ndarray:
    rows = encoder.encode_queries(texts) if queries else encoder.encode_documents(texts)
    return rows.toarray()  # (n, vocabulary)


@pytest.mark.parametrize("architecture", ["splade", "inference-free"])
def test_sparse_vectors_equal_the_padded_forward(request, architecture, texts):
    model = request.getfixturevalue(architecture.replace("-", "_"))
    reference = SparseVectorEncoder(copy.deepcopy(model), batch_size=5, packed="off")
    packed = SparseVectorEncoder(copy.deepcopy(model), batch_size=5, packed="on")
    assert packed.packed and not reference.packed
    wrapper = wrapper_of(transformer_module(packed.model))
    assert isinstance(wrapper, PackedModernBert)
    got, expected = _vectors(packed, texts), _vectors(reference, texts)
    assert wrapper.packed_calls > 0 and wrapper.padded_calls == 0  # the packed forward made these
    assert (expected > 0).sum(axis=1).min() > 0  # real vectors, some terms each
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(_vectors(packed, texts[:3], queries=True),
                               _vectors(reference, texts[:3], queries=True), atol=1e-4, rtol=1e-4)


def test_training_gradients_equal_the_padded_forward(splade, texts):
    """What SparseEncoderTrainer computes (the SPLADE loss's forward and backward) is the same packed."""
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

    reference, packed = copy.deepcopy(splade).train(), copy.deepcopy(splade).train()  # the tiny model has no dropout
    assert enable_packed(packed, mode="on")  # what training.packed: on does (train/run.py)
    anchors, positives = texts[0::2], texts[1::2]
    for model in (reference, packed):
        loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-3,
                          query_regularizer_weight=5e-5)
        tokenize = getattr(model, "preprocess", None) or model.tokenize
        losses = loss([tokenize(anchors), tokenize(positives)], labels=None)  # {name: value}, as the trainer sums
        sum(losses.values()).backward()
    assert wrapper_of(transformer_module(packed)).packed_calls > 0
    ref_grads = dict(reference.named_parameters())
    for name, param in packed.named_parameters():
        if ref_grads[name].grad is None:
            assert param.grad is None, name
            continue
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-3, msg=name)


def test_a_packed_sparse_model_saves_as_the_library_model(splade, texts, tmp_path):
    from sentence_transformers import SparseEncoder

    packed = copy.deepcopy(splade)
    assert enable_packed(packed, mode="on")
    packed.save(str(tmp_path / "model"))
    loaded = SparseEncoder(str(tmp_path / "model"), device="cpu")
    assert not isinstance(transformer_module(loaded).auto_model.model, PackedModernBert)
    np.testing.assert_allclose(loaded.encode_document(texts[:4], convert_to_tensor=True).to_dense().numpy(),
                               splade.encode_document(texts[:4], convert_to_tensor=True).to_dense().numpy(),
                               atol=1e-5)
    assert disable_packed(packed) and wrapper_of(transformer_module(packed)) is None


def test_no_place_for_the_packed_forward_is_an_error_when_insisted_on(splade, caplog):
    """A ModernBERT head model that keeps its base model elsewhere than transformers' own attribute: packed: on
    refuses, auto warns and keeps the Hugging Face forward."""
    model = copy.deepcopy(splade)
    transformer_module(model).auto_model.base_model_prefix = "backbone"  # where nothing is
    with pytest.raises(EmbedkitError, match="has no place in a ModernBertForMaskedLM.*set packed to auto"):
        enable_packed(model, mode="on")
    assert enable_packed(model, mode="auto") is False
    assert "staying on the Hugging Face forward" in caplog.text
    assert wrapper_of(transformer_module(model)) is None


def test_packed_on_with_an_exported_model_backend_is_an_error(splade, tmp_path, monkeypatch):
    """The packed forward is torch's: asked for on an ONNX/OpenVINO backend, refused before any model loads."""
    import embedkit.models.sparse as sparse_module
    from embedkit.config import EncodeSettings
    from embedkit.index.encoders import load_encoder

    splade.save(str(tmp_path / "splade"))
    loads = []
    monkeypatch.setattr(sparse_module, "load_sparse_model", lambda *a, **k: loads.append(a))
    with pytest.raises(EmbedkitError, match="packed: on runs the packed ModernBERT forward, which is torch's"):
        load_encoder("sparse", str(tmp_path / "splade"), EncodeSettings(packed="on", model_backend="onnx"))
    assert loads == []
