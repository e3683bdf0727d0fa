"""The packed ModernBERT forward against HF's padded one: outputs, gradients, ST/PyLate integration, saving."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import embedkit.models.packed.swap as swap_module
from embedkit.errors import EmbedkitError
from embedkit.models.packed.forward import is_modernbert, run_packed_forward
from embedkit.models.packed.hints import HINT_KEY, LengthsHint
from embedkit.models.packed.layout import pack_by_token_budget, unpad
from embedkit.models.packed.swap import PackedModernBert, disable_packed, enable_packed
from embedkit.models.packed.texts import encode_packed
from tests.helpers import import_pylate

pytestmark = pytest.mark.packed
MAX_LEN = 40  # the max_seq_length of st_reference (tests/conftest.py): > the tiny model's local_attention (8)


@pytest.fixture(scope="module")
def hf_model(sharp_modernbert):
    from transformers import ModernBertModel

    return ModernBertModel.from_pretrained(sharp_modernbert, attn_implementation="sdpa").eval()


@pytest.fixture(scope="module")
def tokenizer(sharp_modernbert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(sharp_modernbert)


def _batch(tokenizer, texts, device="cpu"):
    enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def _packed_vs_reference(model, tokenizer, texts, device="cpu", backend="auto"):
    ids, mask = _batch(tokenizer, texts, device)
    reference = model(input_ids=ids, attention_mask=mask).last_hidden_state  # (batch, seq, hidden)
    indices, cu_seqlens, max_seqlen = unpad(mask)
    packed = run_packed_forward(model, ids.flatten()[indices], cu_seqlens.to(device), max_seqlen, kernel=backend)
    return packed, reference.flatten(0, 1)[indices], mask


def test_inputs_exercise_padding_and_window(tokenizer, texts):
    _, mask = _batch(tokenizer, texts)
    lengths = mask.sum(1)
    assert lengths.max() == MAX_LEN and lengths.min() < MAX_LEN  # padding present
    assert (lengths > 8).sum() >= 4  # several sequences longer than the local window


def test_is_modernbert(hf_model, st_reference):
    assert is_modernbert(hf_model) and is_modernbert(PackedModernBert(hf_model))
    assert not is_modernbert(torch.nn.Linear(2, 2))


def test_packed_forward_matches_hf(hf_model, tokenizer, texts):
    with torch.no_grad():
        packed, reference, _ = _packed_vs_reference(hf_model, tokenizer, texts)
    torch.testing.assert_close(packed, reference, atol=1e-4, rtol=1e-4)


def test_equal_lengths_take_the_unmasked_path_and_match_hf(hf_model, tokenizer, texts):
    """No padding at all (every text truncated to MAX_LEN): the fallback skips padding and full-attention masks."""
    from embedkit.models.packed.layout import PackedLayout

    long_texts = [t for t in texts if len(tokenizer(t)["input_ids"]) >= MAX_LEN]
    assert len(long_texts) >= 3
    _, mask = _batch(tokenizer, long_texts)
    assert bool(mask.all())
    _, cu_seqlens, max_seqlen = unpad(mask)
    layout = PackedLayout(cu_seqlens, max_seqlen, int(mask.sum()))
    assert layout.uniform and layout.mask(None, torch.float32) is None  # global layers: no mask
    assert layout.mask(4, torch.float32) is not None  # the sliding window still masks
    with torch.no_grad():
        packed, reference, _ = _packed_vs_reference(hf_model, tokenizer, long_texts)
    torch.testing.assert_close(packed, reference, atol=1e-4, rtol=1e-4)


def test_sliding_window_is_applied(hf_model, tokenizer, texts):
    """Sanity check of the test itself: with a wider window the outputs change, so the window is exercised."""
    wide = copy.deepcopy(hf_model)
    wide.config.local_attention = 4 * MAX_LEN
    with torch.no_grad():
        packed, reference, _ = _packed_vs_reference(wide, tokenizer, texts)
        narrow, _, _ = _packed_vs_reference(hf_model, tokenizer, texts)
    torch.testing.assert_close(packed, reference, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(packed, narrow, atol=1e-3)


def test_wrapper_outputs_and_hidden_states_match_hf(hf_model, tokenizer, texts):
    ids, mask = _batch(tokenizer, texts)
    wrapper = PackedModernBert(hf_model)
    with torch.no_grad():
        ref = hf_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        out = wrapper(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
        as_tuple = wrapper(input_ids=ids, attention_mask=mask, return_dict=False)
    keep = mask.bool()
    torch.testing.assert_close(out.last_hidden_state[keep], ref.last_hidden_state[keep], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[0], out.last_hidden_state)
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)
    assert (out.last_hidden_state[~keep] == 0).all()
    assert len(out.hidden_states) == len(ref.hidden_states)
    for mine, theirs in zip(out.hidden_states, ref.hidden_states):
        torch.testing.assert_close(mine[keep], theirs[keep], atol=1e-4, rtol=1e-4)


def test_wrapper_shares_weights_and_state_dict(hf_model):
    wrapper = PackedModernBert(hf_model)
    assert list(wrapper.state_dict()) == list(hf_model.state_dict())
    assert all(a is b for a, b in zip(wrapper.parameters(), hf_model.parameters()))
    assert wrapper.config is hf_model.config and wrapper.device == hf_model.device
    clone = copy.deepcopy(wrapper)  # sharing survives a deep copy
    assert all(a is b for a, b in zip(clone.parameters(), clone.hf_model.parameters()))


def test_enable_packed_modes(st_reference):
    model = copy.deepcopy(st_reference)
    assert enable_packed(model, mode="off") is False
    assert enable_packed(model, mode="auto") is True  # CPU too
    assert disable_packed(model)
    assert enable_packed(model, mode="on") is True
    assert isinstance(model[0].auto_model, PackedModernBert)
    assert enable_packed(model, mode="on") is True  # idempotent
    assert disable_packed(model) and not isinstance(model[0].auto_model, PackedModernBert)
    with pytest.raises(ValueError):
        enable_packed(model, mode="yes")


def test_enable_packed_ignores_other_backbones(minilm_path):
    from sentence_transformers import SentenceTransformer

    assert enable_packed(SentenceTransformer(minilm_path, device="cpu"), mode="on") is False


def test_sentence_transformer_encode_matches(st_reference, texts):
    model = copy.deepcopy(st_reference)
    assert enable_packed(model, mode="on")
    expected = st_reference.encode(texts, batch_size=5, convert_to_numpy=True)
    got = model.encode(texts, batch_size=5, convert_to_numpy=True)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_gradients_match(st_reference, texts):
    """A contrastive loss on the packed model gives the same gradients as on the padded one."""
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    reference = copy.deepcopy(st_reference).train()
    packed = copy.deepcopy(st_reference).train()
    assert enable_packed(packed, mode="on")
    anchors, positives = texts[0::2], texts[1::2]
    for model in (reference, packed):
        features = [model.tokenize(anchors), model.tokenize(positives)]
        MultipleNegativesRankingLoss(model)(features, labels=None).backward()
    ref_grads = dict(reference.named_parameters())
    for name, param in packed.named_parameters():
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-3, msg=name)


def test_gradient_checkpointing(st_reference, texts):
    plain, ckpt = copy.deepcopy(st_reference).train(), copy.deepcopy(st_reference).train()
    for model in (plain, ckpt):
        enable_packed(model, mode="on")
    ckpt[0].auto_model.gradient_checkpointing_enable({"use_reentrant": False})
    assert ckpt[0].auto_model.layers[0].gradient_checkpointing
    for model in (plain, ckpt):
        model(model.tokenize(texts))["sentence_embedding"].square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("normalize", [False, True])
def test_encode_packed_matches_encode(st_reference, texts, normalize):
    expected = st_reference.encode(texts, batch_size=4, normalize_embeddings=normalize)
    got = encode_packed(st_reference, texts, max_tokens_per_batch=100, normalize=normalize)  # several batches
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_encode_packed_cls_and_prompt(st_reference, texts):
    expected = st_reference.encode(texts, prompt="search: ", output_value="token_embeddings")
    got = encode_packed(st_reference, texts, pooling="cls", prompt="search: ")
    np.testing.assert_allclose(got, np.stack([e[0].numpy() for e in expected]), atol=1e-4, rtol=1e-4)


def test_save_after_enable_reloads(st_reference, texts, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = copy.deepcopy(st_reference)
    keys_before = list(model.state_dict())
    assert enable_packed(model, mode="on")
    assert list(model.state_dict()) == keys_before
    model.save(str(tmp_path / "saved"))
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert type(reloaded[0].auto_model).__name__ == "ModernBertModel"
    np.testing.assert_allclose(reloaded.encode(texts), st_reference.encode(texts), atol=1e-5, rtol=1e-5)


def test_colbert_query_expansion_keeps_padded_forward(sharp_modernbert, texts):
    """PyLate uses the outputs of masked query-expansion tokens; documents only use real tokens."""
    pylate_models = import_pylate("pylate.models")
    from embedkit.models.colbert import library_of

    reference = pylate_models.ColBERT(str(sharp_modernbert), device="cpu", query_length=16, document_length=MAX_LEN)
    packed = copy.deepcopy(reference)
    assert library_of(packed).padded_query_length(packed) == 16  # the library says how long expanded queries are
    assert enable_packed(packed, mode="on", padded_fallback=library_of(packed).padded_query_length(packed))
    assert packed[0].auto_model.padded_fallback_len == 16
    for is_query in (True, False):
        expected = reference.encode(texts, is_query=is_query, batch_size=5)
        got = packed.encode(texts, is_query=is_query, batch_size=5)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, atol=1e-4, rtol=1e-4)


def test_colbert_contrastive_gradients_match(sharp_modernbert, texts):
    """PyLate training through the packed model: queries (expanded, padded fallback) and documents (packed)
    give the same Contrastive-loss gradients as PyLate on the plain model."""
    import_pylate("pylate")
    from pylate import losses, models

    from embedkit.models.colbert import library_of

    reference = models.ColBERT(str(sharp_modernbert), device="cpu", query_length=16, document_length=MAX_LEN)
    packed = copy.deepcopy(reference)
    assert enable_packed(packed, mode="on", padded_fallback=library_of(packed).padded_query_length(packed))
    for model in (reference, packed):
        model.train()
        features = [model.tokenize(texts[0::2], is_query=True), model.tokenize(texts[1::2], is_query=False)]
        assert features[1]["attention_mask"].min() == 0  # documents of several lengths: padding to skip
        losses.Contrastive(model)(features, labels=None).backward()
    ref_grads = dict(reference.named_parameters())
    for name, param in packed.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-3, msg=name)


def test_pack_by_token_budget_covers_everything():
    lengths = [7, 1, 30, 12, 12, 3, 50, 9]
    batches = pack_by_token_budget(lengths, max_tokens=32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 32 or len(b) == 1 for b in batches)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="hardware: needs a CUDA device")


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative Frobenius error: robust to the few elements bf16 rounds badly."""
    return ((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-12)).item()


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("backend", ["auto", "varlen"])
def test_cuda_bf16_matches_hf_sdpa(hf_model, tokenizer, texts, backend):
    model = copy.deepcopy(hf_model).cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        packed, reference, _ = _packed_vs_reference(model, tokenizer, texts, device="cuda", backend=backend)
    assert packed.dtype == reference.dtype
    assert _rel_err(packed, reference) < 2e-2


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("backend,tol", [("sdpa", 1e-5), ("auto", 2e-2)])  # auto: fp32 model, bf16 attention
def test_cuda_fp32_matches_hf_sdpa(hf_model, tokenizer, texts, backend, tol):
    model = copy.deepcopy(hf_model).cuda()
    with torch.no_grad():
        packed, reference, _ = _packed_vs_reference(model, tokenizer, texts, device="cuda", backend=backend)
    assert packed.dtype == torch.float32
    assert _rel_err(packed, reference) < tol


@pytest.mark.gpu
@gpu
def test_cuda_bf16_gradients_and_encode(st_reference, texts):
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    reference = copy.deepcopy(st_reference).cuda().train()
    packed = copy.deepcopy(st_reference).cuda().train()
    assert enable_packed(packed, mode="auto")  # auto turns it on for CUDA
    for model in (reference, packed):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            features = [model.tokenize(texts[0::2]), model.tokenize(texts[1::2])]
            features = [{k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in f.items()} for f in features]
            MultipleNegativesRankingLoss(model)(features, labels=None).backward()
    ref_grads = dict(reference.named_parameters())
    pairs = [(p.grad, ref_grads[name].grad) for name, p in packed.named_parameters()]
    assert _rel_err(torch.cat([a.flatten() for a, _ in pairs]), torch.cat([b.flatten() for _, b in pairs])) < 3e-2
    for name, (a, b) in zip(dict(packed.named_parameters()), pairs):
        assert _rel_err(a, b) < 0.1, name
    expected = st_reference.encode(texts, normalize_embeddings=True)
    got = encode_packed(packed.eval(), texts, normalize=True)
    assert (got * expected).sum(1).min() > 0.99  # cosine with the fp32 CPU reference
    got = packed.encode(texts, normalize_embeddings=True)  # fp32 weights, no autocast: bf16 attention only
    assert (got * expected).sum(1).min() > 0.995


def test_the_swap_is_proven_by_a_call_counter(st_reference, texts):
    """enable_packed really routes the library's forward through the packed one (on every supported
    sentence-transformers: ``auto_model`` attribute or read-only property)."""
    model = copy.deepcopy(st_reference)
    assert enable_packed(model, mode="on")
    wrapper = model[0].auto_model
    assert isinstance(wrapper, PackedModernBert) and wrapper.packed_calls == 0
    model.encode(texts, batch_size=8)
    assert wrapper.packed_calls == 2 and wrapper.padded_calls == 0


def test_a_swap_into_the_wrong_attribute_is_caught(st_reference, monkeypatch, caplog):
    """Where the swap does not take effect (as assigning ``auto_model`` on sentence-transformers >= 5.4 did), on
    raises and auto warns and stays on HF's forward."""
    import logging

    real = swap_module._backbone_attr
    monkeypatch.setattr(swap_module, "_backbone_attr", lambda first: "model" if real(first) == "auto_model"
                        else "auto_model")
    model = copy.deepcopy(st_reference)
    hf = model[0].auto_model
    with pytest.raises(EmbedkitError, match="after the swap"):
        enable_packed(model, mode="on")
    with caplog.at_level(logging.WARNING):
        assert enable_packed(model, mode="auto") is False
    assert "staying on the Hugging Face forward" in caplog.text and model[0].auto_model is hf


def test_a_forward_that_bypasses_the_swap_is_caught(st_reference, texts):
    """A library whose Transformer module runs a model kept elsewhere would train and encode padded, silently:
    the probe sees the packed forward is never called."""
    model = copy.deepcopy(st_reference)
    first = model[0]
    hf = first.auto_model

    def stale_forward(features, **kwargs):
        features["token_embeddings"] = hf(input_ids=features["input_ids"],
                                          attention_mask=features["attention_mask"]).last_hidden_state
        return features

    first.forward = stale_forward
    with pytest.raises(EmbedkitError, match="without calling the packed forward"):
        enable_packed(model, mode="on")
    assert first.auto_model is hf
    assert enable_packed(model, mode="auto") is False and first.auto_model is hf


def test_forward_unpads_from_host_side_lengths(st_reference, texts):
    """Tokenising attaches each row's length, computed on the host, and the training forward unpads from it
    (no device sync on a GPU); on CPU it is also checked against the mask, so a wrong one raises."""
    model = copy.deepcopy(st_reference).train()
    assert enable_packed(model, mode="on")
    wrapper = model[0].auto_model
    features = model.tokenize(texts)
    hint = features[HINT_KEY]
    assert isinstance(hint, LengthsHint) and list(hint.lengths) == features["attention_mask"].sum(1).tolist()
    model(features)["sentence_embedding"].sum().backward()
    assert wrapper.host_unpads == 1
    features = model.tokenize(texts)
    features[HINT_KEY].lengths[0] -= 1
    with pytest.raises(EmbedkitError, match="disagree"):
        model(features)
    sliced = model.tokenize(texts)[HINT_KEY][2:5]  # GradCache slices features by rows
    assert len(sliced) == 3


def test_unpad_hint_from_masks():
    left = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 0, 0]])
    hint = LengthsHint.from_mask(left)
    assert hint.starts.tolist() == [1, 0, 0] and hint.lengths.tolist() == [2, 3, 0]
    assert LengthsHint.from_mask(torch.tensor([[1, 0, 1]])) is None  # not one run of real tokens


@pytest.mark.gpu
@gpu
def test_cuda_training_forward_does_not_wait_for_the_device(st_reference, texts):
    """With the host-side lengths from tokenisation, the wrapper's unpadding and packed forward queue their work
    without a device->host sync (torch.nonzero on the mask would wait for every previous kernel)."""
    model = copy.deepcopy(st_reference).cuda().train()
    assert enable_packed(model, mode="on")
    wrapper = model[0].auto_model
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    features = tokenize(texts)
    features = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        model(dict(features))  # first call: self-check (which syncs) and kernel warm-up
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = model(dict(features))["sentence_embedding"]
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert wrapper.host_unpads == 2 and torch.isfinite(out).all()
