"""A CPU batch holds as many tokens as keep its widest activation under the cap, for every way a model runs."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedkit.models import token_budget
from embedkit.models.token_budget import ACTIVATION_BYTES, cpu_token_budget


@pytest.fixture
def minilm(minilm_path) -> SentenceTransformer:
    return SentenceTransformer(minilm_path, device="cpu")


def test_the_widest_layer_sets_the_budget_in_fp32_and_bf16(minilm):
    from embedkit.models.precision import cast_to_bf16

    widest = minilm[0].auto_model.config.intermediate_size  # 1536: MiniLM's feed-forward layer
    assert cpu_token_budget(minilm) == ACTIVATION_BYTES // (widest * 4)
    cast_to_bf16(minilm)  # its linear layers become oneDNN's: their widths still count
    assert cpu_token_budget(minilm) == ACTIVATION_BYTES // (widest * 2)


def test_eager_attention_counts_its_scores(minilm_path):
    model = SentenceTransformer(minilm_path, device="cpu", model_kwargs={"attn_implementation": "eager"})
    config = model[0].auto_model.config
    scores = config.num_attention_heads * model.max_seq_length  # 12 x 256 > 1536
    assert cpu_token_budget(model) == ACTIVATION_BYTES // (scores * 4)


def test_a_model_another_runtime_runs_is_sized_by_its_config_and_precision(minilm):
    from embedkit.models.backends import RuntimeModel

    module = minilm[0]
    config = module.auto_model.config
    module.auto_model = RuntimeModel(lambda feeds: None, config, "last_hidden_state", "openvino", "bf16")
    assert cpu_token_budget(minilm) == ACTIVATION_BYTES // (config.intermediate_size * 2)


def test_no_budget_off_the_cpu_or_without_layers():
    assert cpu_token_budget(torch.nn.Linear(4, 4, device="meta")) is None
    assert cpu_token_budget(torch.nn.LayerNorm(4)) is None


def test_at_least_one_token(monkeypatch):
    monkeypatch.setattr(token_budget, "ACTIVATION_BYTES", 1)
    assert cpu_token_budget(torch.nn.Linear(4, 4)) == 1
