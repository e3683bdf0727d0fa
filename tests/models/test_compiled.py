"""The compiled packed forward: same outputs and gradients as HF, one graph for batches of any shape."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

import embedkit.models.packed_forward as forward_module
from embedkit.models.modernbert_unpadded import enable_unpadded
from embedkit.models.packed_forward import PackedForward
from embedkit.models.packed_encoding import encode_packed
from embedkit.models.packing import cu_seqlens_from_lengths

pytestmark = pytest.mark.packed


def _packed_batch(tokenizer, texts, max_len):
    ids = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
    cu_seqlens, max_seqlen = cu_seqlens_from_lengths(torch.tensor([len(x) for x in ids]))
    return torch.tensor([t for x in ids for t in x]), cu_seqlens, max_seqlen


@pytest.mark.slow
def test_compiled_forward_matches_eager_without_recompiling(st_reference, texts, max_len):
    import torch._dynamo

    hf = st_reference[0].auto_model
    tokenizer = st_reference.tokenizer
    eager, compiled = PackedForward(hf, "sdpa", compile=False), PackedForward(hf, "sdpa", compile=True)
    with torch.inference_mode():
        for i, batch in enumerate((texts[:6], texts[6:9], texts[9:])):  # 6, 3, 7 sequences, other lengths
            packed = _packed_batch(tokenizer, batch, max_len)
            with torch._dynamo.config.patch(error_on_recompile=i > 0):  # the first batch's graph serves all
                got = compiled(*packed)
            torch.testing.assert_close(got, eager(*packed), atol=1e-5, rtol=1e-4)
    assert compiled.compile  # it did not fall back to eager


@pytest.mark.slow
def test_compiled_training_gradients_match_hf(st_reference, texts):
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    reference = copy.deepcopy(st_reference).train()
    packed = copy.deepcopy(st_reference).train()
    assert enable_unpadded(packed, mode="on")
    packed[0].auto_model.compile = True
    for model in (reference, packed):
        features = [model.tokenize(texts[0::2]), model.tokenize(texts[1::2])]
        MultipleNegativesRankingLoss(model)(features, labels=None).backward()
    ref_grads = dict(reference.named_parameters())
    for name, param in packed.named_parameters():
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-3, msg=name)


def test_compile_failure_runs_eagerly_with_one_warning(st_reference, texts, monkeypatch, caplog):
    def no_compiler(fn, backend):
        def fail(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return fail

    monkeypatch.setattr(forward_module, "_compile", no_compiler)
    model = copy.deepcopy(st_reference)
    expected = st_reference.encode(texts, batch_size=4)
    with caplog.at_level(logging.WARNING):
        got = encode_packed(model, texts, max_tokens_per_batch=100, compile=True)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert caplog.text.count("torch.compile of the packed ModernBERT forward failed") == 1


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


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
