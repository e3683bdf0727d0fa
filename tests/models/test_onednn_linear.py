"""oneDNN bf16 linear layers with packed weights give nn.Linear's outputs (GELU fused: GELU's)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedkit.models import onednn_linear
from embedkit.models.onednn_linear import OneDnnLinear, use_onednn_linears
from embedkit.models.sorted_batches import encode_sorted

pytestmark = pytest.mark.skipif(not onednn_linear.available(), reason="hardware: no oneDNN bf16 linear kernel here")


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.float() - expected.float()).abs().max() / expected.float().abs().max())


@pytest.mark.parametrize(("rows", "d_in", "d_out"), [(1, 96, 160), (37, 96, 160), (512, 96, 160), (300, 1536, 384)])
def test_same_outputs_as_nn_linear(rows, d_in, d_out):
    """Equal to bf16 rounding (bf16 has 8 bits of mantissa: 2^-8 = 3.9e-3); often bit-identical."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(d_in, d_out).bfloat16()
    x = torch.randn(rows, d_in).bfloat16()
    with torch.no_grad():
        assert _relative(OneDnnLinear(linear)(x), linear(x)) < 1e-2
        three_d = OneDnnLinear(linear)(x.view(1, rows, d_in))  # (1, rows, d_out)
        assert three_d.shape == (1, rows, d_out) and _relative(three_d[0], linear(x)) < 1e-2
        assert _relative(OneDnnLinear(linear, gelu=True)(x), torch.nn.functional.gelu(linear(x))) < 1e-2
        assert _relative(OneDnnLinear(linear)(x), -linear(x)) > 1  # the check can fail


def test_a_bert_in_bf16_keeps_its_embeddings(minilm_path, code_pairs):
    """Every linear layer of MiniLM replaced, GELU fused into the intermediate one, embeddings as nn.Linear's."""
    texts = [p.code for p in code_pairs[:12]] + [p.query for p in code_pairs[:12]]
    model = SentenceTransformer(minilm_path, device="cpu")
    model[0].auto_model.bfloat16()
    expected = encode_sorted(model, texts, batch_size=8)
    swapped = copy.deepcopy(model)
    replaced = use_onednn_linears(swapped[0].auto_model)
    layers = swapped[0].auto_model.encoder.layer
    assert replaced == 6 * len(layers) + 1  # q, k, v, attention output, intermediate, output; the pooler
    assert all(layer.intermediate.dense.gelu and isinstance(layer.intermediate.intermediate_act_fn, torch.nn.Identity)
               for layer in layers)
    assert not any(isinstance(m, torch.nn.Linear) for m in swapped[0].auto_model.modules())
    got = encode_sorted(swapped, texts, batch_size=8)
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.999


def test_fp32_layers_are_left_alone(minilm_path):
    model = SentenceTransformer(minilm_path, device="cpu")
    assert use_onednn_linears(model[0].auto_model) == 0
