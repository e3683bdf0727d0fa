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


@pytest.mark.parametrize("rows", [1, 37, 512])
def test_same_outputs_as_nn_linear(rows):
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 160).bfloat16()
    x = torch.randn(rows, 96).bfloat16()
    with torch.no_grad():
        assert torch.equal(OneDnnLinear(linear)(x), linear(x))
        assert torch.equal(OneDnnLinear(linear)(x.view(1, rows, 96)), linear(x).view(1, rows, 160))  # (1, rows, out)
        fused = OneDnnLinear(linear, gelu=True)(x).float()
        np.testing.assert_allclose(fused, torch.nn.functional.gelu(linear(x)).float(), atol=3e-2, rtol=1e-2)


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
