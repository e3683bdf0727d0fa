"""The bf16 option: native bf16 required, checked against fp32 on the first texts, any encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedkit.errors import EmbedkitError
from embedkit.models import onednn_linear, precision
from embedkit.models.onednn_linear import OneDnnLinear
from embedkit.models.precision import PrecisionEncoder, max_relative_error

pytestmark = pytest.mark.packed
needs_bf16 = pytest.mark.skipif(not precision.cpu_bf16_features(), reason="hardware: a CPU without AVX512-BF16/AMX")


def test_bf16_is_refused_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ())
    with pytest.raises(EmbedkitError, match="AVX512-BF16 or AMX.*fp32"):
        PrecisionEncoder(object(), torch.device("cpu"), "bf16")
    PrecisionEncoder(object(), torch.device("cpu"), "fp32")  # fp32 is always fine


class _Transformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.auto_model = torch.nn.Linear(4, 4)


class _Drifting:
    """An encoder whose bf16 output is wrong (as a broken bf16 kernel would be)."""

    dim = 4

    def __init__(self):
        self.model = torch.nn.Sequential(_Transformer())

    def encode_documents(self, texts):
        out = np.ones((len(texts), 4), dtype=np.float32)
        if self.model[0].auto_model.weight.dtype == torch.bfloat16:
            out[:, 0] = -1.0
        return out

    encode_queries = encode_documents


def test_a_bf16_path_that_differs_from_fp32_is_an_error(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ("avx512_bf16",))
    encoder = PrecisionEncoder(_Drifting(), torch.device("cpu"), "bf16")
    assert encoder.dim == 4  # the wrapped encoder's attributes
    with pytest.raises(EmbedkitError, match="precision bf16 on model backend torch: the document embeddings "
                       "differ from torch fp32"):
        encoder.encode_documents(["a", "b"])


def test_relative_error_of_dense_and_multi_vector_outputs():
    a = np.ones((2, 3), np.float32)
    assert max_relative_error(a, a) == 0
    assert max_relative_error([a[:1], a], [a[:1], a[:1]]) == float("inf")  # token counts differ


@needs_bf16
@pytest.mark.parametrize("kind", ["minilm", "packed-modernbert"])
def test_bf16_encoders_stay_close_to_fp32(kind, minilm_path, tiny_modernbert, texts):
    """Any encoder runs in bf16 the same way: sentence-transformers encode under autocast (MiniLM) or the packed
    ModernBERT forward (checked against HF's in bf16 first)."""
    from embedkit.models.dense import DenseEncoder, load_dense_model

    path = minilm_path if kind == "minilm" else str(tiny_modernbert)
    fp32 = DenseEncoder(load_dense_model(path), packed="off")
    bf16 = PrecisionEncoder(DenseEncoder(load_dense_model(path)), torch.device("cpu"), "bf16")
    assert bf16._packed == (kind != "minilm")
    expected, got = fp32.encode_documents(texts), bf16.encode_documents(texts)
    assert got.dtype == np.float32 and (got * expected).sum(1).min() > 0.99  # cosine (both normalised)
    assert bf16._checked == {"document", "query"}  # both sides checked on the first call's texts
    transformer = bf16.model[0].auto_model
    norms = [m for m in transformer.modules() if isinstance(m, torch.nn.LayerNorm)]
    linears = [m for m in transformer.modules() if isinstance(m, (torch.nn.Linear, OneDnnLinear))]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)  # layer norms keep fp32 weights
    # cast once, not per call (and packed once for oneDNN where it runs)
    assert linears and all(getattr(m, "weight", getattr(m, "packed", None)).dtype == torch.bfloat16 for m in linears)
    assert all(isinstance(m, OneDnnLinear) for m in linears) == onednn_linear.available()


@needs_bf16
def test_bf16_colbert_casts_once_and_projects_in_fp32(tiny_modernbert, texts):
    """A ColBERT model gets the same cast; its projection after the transformer stays fp32."""
    from embedkit.config import EncodeSettings
    from embedkit.index.encoders import load_encoder

    encoder = load_encoder("colbert", str(tiny_modernbert), EncodeSettings(precision="bf16"))
    fp32 = load_encoder("colbert", str(tiny_modernbert), EncodeSettings())
    got, expected = encoder.encode_documents(texts), fp32.encode_documents(texts)
    assert max_relative_error(got, expected) < precision.BF16_TOLERANCE
    assert all(p.dtype == torch.float32 for m in list(encoder.model)[1:] for p in m.parameters())
