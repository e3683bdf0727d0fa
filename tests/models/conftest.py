"""Fixtures of the packed-forward tests: a tiny ModernBERT with a byte-level BPE tokenizer (whitespace-sensitive,
as ModernBERT's own), and a MultiVectorEncoder on the sharp tiny model where sentence-transformers has one."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

# as tests/conftest.py's PACKED_MAX_LEN: longer than the tiny model's local attention window (8)
MAX_LEN = 40


@pytest.fixture(scope="session")
def bpe_modernbert(tmp_path_factory, code_pairs) -> Path:
    """A tiny random-init ModernBERT whose tokenizer is byte-level BPE (spaces are part of the tokens)."""
    from embedkit.models.tiny import build_tiny_modernbert

    texts = [p.query for p in code_pairs] + [p.code for p in code_pairs]
    return build_tiny_modernbert(tmp_path_factory.mktemp("bpe-modernbert"), texts, tokenizer="bpe")


@pytest.fixture(scope="session")
def multivector_encoder(sharp_modernbert):
    """sentence-transformers' ColBERT model type on the sharp tiny ModernBERT: a document prompt, a document
    length shorter than the code texts, a 32-d projection, punctuation skiplist, token-level Normalize."""
    st = pytest.importorskip("sentence_transformers")
    if not hasattr(st, "MultiVectorEncoder"):
        pytest.skip("sentence-transformers without MultiVectorEncoder (< 6)")
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    torch.manual_seed(0)
    transformer = Transformer(str(sharp_modernbert), document_length=MAX_LEN, query_length=16)
    modules = [transformer, Dense(transformer.get_embedding_dimension(), 32, bias=False,
                                  activation_function=torch.nn.Identity(), module_input_name="token_embeddings",
                                  module_output_name="token_embeddings"),
               MultiVectorMask(skiplist_words=list(string.punctuation)),
               Normalize(module_input_name="token_embeddings")]
    return MultiVectorEncoder(modules=modules, device="cpu", prompts={"query": "q: ", "document": "d: "})
