"""The compiled packed forward: same outputs and gradients as HF, one graph for batches of any shape."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

import embedkit.models.packed.forward as forward_module
from embedkit.models.packed.forward import PackedForward
from embedkit.models.packed.layout import cu_seqlens_from_lengths
from embedkit.models.packed.swap import enable_packed
from embedkit.models.packed.texts import encode_packed

pytestmark = pytest.mark.packed


def _packed_batch(tokenizer, texts, max_len):
    ids = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
    cu_seqlens, max_seqlen = cu_seqlens_from_lengths(torch.tensor([len(x) for x in ids]))
    return torch.tensor([t for x in ids for t in x]), cu_seqlens, max_seqlen


@pytest.mark.slow
def test_compiled_forward_matches_eager_without_recompiling(st_reference, texts, max_len):
    """One graph for batches of 6, 3, 1 and 7 sequences of other lengths; a recompilation would raise
    (Dynamo's error_on_recompile is no longer swallowed by the compile-failure fallback)."""
    import torch._dynamo

    hf = st_reference[0].auto_model
    tokenizer = st_reference.tokenizer
    eager, compiled = PackedForward(hf, "sdpa", compile=False), PackedForward(hf, "sdpa", compile=True)
    with torch.inference_mode():
        for i, batch in enumerate((texts[:6], texts[6:9], texts[9:10], texts[10:])):
            packed = _packed_batch(tokenizer, batch, max_len)
            with torch._dynamo.config.patch(error_on_recompile=i > 0):  # the first batch's graph serves all
                got = compiled(*packed)
            torch.testing.assert_close(got, eager(*packed), atol=1e-5, rtol=1e-4)
            if i == 0:
                graphs = compiled.graphs
    assert compiled.compile and compiled.graphs == graphs >= 1  # it did not fall back to eager


@pytest.mark.slow
def test_one_compiled_forward_per_model_and_a_forced_recompile_is_detected(st_reference, texts, caplog):
    """encode_packed and its self-check share the model's one compiled forward across calls (no second graph for
    inference vs no-grad mode, none per call); a real recompilation (grad mode) is counted and reported."""
    from embedkit.models.packed.forward import packed_forward

    model = copy.deepcopy(st_reference)
    forward = packed_forward(model[0].auto_model, "sdpa", compile=True)
    assert packed_forward(model[0].auto_model, "sdpa", compile=True) is forward
    encode_packed(model, texts[:5], compile=True)
    graphs = forward.graphs
    assert graphs >= 1 and forward.compile
    encode_packed(model, texts, compile=True, max_tokens_per_batch=64)  # other shapes, several batches
    encode_packed(model, texts[:1], compile=True)  # one sequence
    assert forward.graphs == graphs
    ids, cu, longest = _packed_batch(st_reference.tokenizer, texts[:3], 40)
    with torch.inference_mode(), caplog.at_level(logging.WARNING):
        forward.full(ids, cu, longest, output_hidden_states=True)  # another graph in the same mode: a recompile
    assert forward.graphs > graphs and "recompiled" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        forward(ids, cu, longest).sum().backward()  # training: a mode of its own, its first graph is no recompile
    assert "recompiled" not in caplog.text
    assert all(p.grad is not None for p in model[0].auto_model.parameters() if p.requires_grad)


@pytest.mark.slow
def test_compiled_training_gradients_match_hf(st_reference, texts):
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    reference = copy.deepcopy(st_reference).train()
    packed = copy.deepcopy(st_reference).train()
    assert enable_packed(packed, mode="on")
    packed[0].auto_model.compile = True
    for model in (reference, packed):
        features = [model.tokenize(texts[0::2]), model.tokenize(texts[1::2])]
        MultipleNegativesRankingLoss(model)(features, labels=None).backward()
    ref_grads = dict(reference.named_parameters())
    for name, param in packed.named_parameters():
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-3, msg=name)
    assert packed[0].auto_model.packed_calls == 2  # both columns ran the compiled packed forward


def test_compile_failure_runs_eagerly_with_one_warning(st_reference, texts, monkeypatch, caplog):
    """A failed compilation is remembered with the model: later calls run eagerly without trying again."""
    attempts = []

    def no_compiler(fn, backend):
        attempts.append(fn)

        def fail(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return fail

    monkeypatch.setattr(forward_module, "_compile", no_compiler)
    model = copy.deepcopy(st_reference)
    expected = st_reference.encode(texts, batch_size=4)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            got = encode_packed(model, texts, max_tokens_per_batch=100, compile=True)
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert caplog.text.count("torch.compile of the packed ModernBERT forward failed") == 1 and len(attempts) == 1


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="hardware: needs a CUDA device")


@pytest.mark.gpu
@gpu
def test_cuda_compiled_encode_matches_and_does_not_recompile(st_reference, texts):
    import torch._dynamo

    model = copy.deepcopy(st_reference).cuda()
    expected = st_reference.encode(texts, normalize_embeddings=True)
    encode_packed(model, texts[:5], normalize=True, compile=True)  # compiles
    with torch._dynamo.config.patch(error_on_recompile=True):
        got = encode_packed(model, texts, normalize=True, compile=True, max_tokens_per_batch=64)
    assert (got * expected).sum(1).min() > 0.99
