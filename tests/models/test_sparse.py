"""Sparse models: the chunked vocabulary projection equals SpladePooling's output and never projects more than
its chunk of tokens at once (an 8k-token document included); saved sparse folders are recognised."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from embedkit.config import ModelConfig, SparseConfig
from embedkit.models.sparse import SparseVectorEncoder, build_sparse_model, is_sparse_checkpoint, to_csr


@pytest.fixture(scope="module")
def tiny_splade(tiny_modernbert):
    import torch

    torch.manual_seed(0)
    return build_sparse_model(ModelConfig(name=str(tiny_modernbert)), SparseConfig())


def test_chunked_projection_equals_splade_pooling(tiny_splade, code_pairs):
    texts = [p.code[:2000] for p in code_pairs[:12]]  # different lengths: padding inside the batch
    plain = to_csr(tiny_splade.encode_document(texts, batch_size=6, convert_to_sparse_tensor=True),
                   tiny_splade.get_embedding_dimension())
    encoder = SparseVectorEncoder(copy.deepcopy(tiny_splade), batch_size=6, chunk_tokens=37)
    assert type(encoder.model[1]).__name__ == "ChunkedSpladePooling"
    chunked = encoder.encode_documents(texts)
    assert plain.nnz == chunked.nnz > 0
    assert abs(plain - chunked).max() < 1e-5


def test_projection_is_bounded_at_8k_tokens(tiny_splade, code_pairs):
    """An 8,192-token document: the decoder (hidden -> vocabulary) never sees more than chunk_tokens rows."""
    model = copy.deepcopy(tiny_splade)
    model.max_seq_length = 8192
    encoder = SparseVectorEncoder(model, batch_size=2, chunk_tokens=512)
    rows = []
    encoder.model[1].decoder.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0] * i[0].shape[1]))
    text = " ".join(p.code for p in code_pairs)  # far over 8k tokens: truncated to 8,192
    vectors = encoder.encode_documents([text, "short"])
    assert vectors.shape[0] == 2 and vectors[0].nnz > 0
    assert max(rows) <= 512 and sum(rows) >= 8192  # every token projected, at most 512 at a time


def test_saved_sparse_folder_is_recognised(tmp_path, tiny_splade, tiny_modernbert):
    tiny_splade.save(str(tmp_path / "m"))
    assert is_sparse_checkpoint(str(tmp_path / "m")) and not is_sparse_checkpoint(str(tiny_modernbert))
    from embedkit.index.registry import detect_kind

    assert detect_kind(str(tmp_path / "m")) == "sparse"


def test_inference_free_queries_use_static_weights(tiny_modernbert):
    model = build_sparse_model(ModelConfig(name=str(tiny_modernbert)), SparseConfig(architecture="inference-free"))
    encoder = SparseVectorEncoder(model)
    q = encoder.encode_queries(["add two numbers"])
    d = encoder.encode_documents(["def add(a, b): return a + b"])
    assert q.shape == d.shape and 0 < q.nnz < 10  # a static weight per query token, nothing expanded
    assert np.isfinite(d.data).all()
