"""Fixtures of the packed-ModernBERT tests: a tiny ModernBERT whose attention depends on positions, texts that mix
lengths, a SentenceTransformer on it, a byte-level BPE variant, and sentence-transformers' MultiVectorEncoder."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKED_MAX_LEN = 40  # > local_attention (8) of the tiny model, so the ±4 sliding window matters
QKV_SCALE = 10.0  # random init gives near-uniform attention, blind to RoPE (a wrong theta moves outputs by 5e-5)


@pytest.fixture(scope="session")
def max_len() -> int:
    return PACKED_MAX_LEN


@pytest.fixture(scope="session")
def sharp_modernbert(tiny_modernbert, tmp_path_factory):
    """The tiny ModernBERT with ``Wqkv`` scaled up so attention is peaked and positions matter
    (a wrong RoPE theta then moves outputs by ~5e-2, far above the 1e-4 tolerance)."""
    import torch
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
    model.max_seq_length = PACKED_MAX_LEN
    return model


@pytest.fixture(scope="session")
def bpe_modernbert(tmp_path_factory, code_pairs) -> Path:
    """A tiny random-init ModernBERT whose tokenizer is byte-level BPE, as ModernBERT's own: spaces are part of
    the tokens, so leading or trailing whitespace changes the ids."""
    from embedkit.models.tiny import build_tiny_modernbert

    texts = [p.query for p in code_pairs] + [p.code for p in code_pairs]
    return build_tiny_modernbert(tmp_path_factory.mktemp("bpe-modernbert"), texts, tokenizer="bpe")


@pytest.fixture(scope="session")
def multivector_encoder(sharp_modernbert):
    """sentence-transformers' ColBERT model type (>= 6) on the sharp tiny ModernBERT: a document prompt, a document
    length shorter than the code texts, a 32-d projection, punctuation skiplist, token-level Normalize."""
    import string

    import sentence_transformers as st

    if not hasattr(st, "MultiVectorEncoder"):
        pytest.skip("stack: sentence-transformers without MultiVectorEncoder (< 6), as in PyLate's environment")
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    torch.manual_seed(0)
    transformer = Transformer(str(sharp_modernbert), document_length=PACKED_MAX_LEN, query_length=16)
    modules = [transformer, Dense(transformer.get_embedding_dimension(), 32, bias=False,
                                  activation_function=torch.nn.Identity(), module_input_name="token_embeddings",
                                  module_output_name="token_embeddings"),
               MultiVectorMask(skiplist_words=list(string.punctuation)),
               Normalize(module_input_name="token_embeddings")]
    return MultiVectorEncoder(modules=modules, device="cpu", prompts={"query": "q: ", "document": "d: "})
