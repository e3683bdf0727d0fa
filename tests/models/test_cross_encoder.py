"""The one CrossEncoder loader: what the cross-encoder reranker and mining's rescoring both load through."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from embedkit.models.cross_encoder import load_cross_encoder


def test_loads_a_folder_and_names_what_cannot_load(tmp_path, tiny_modernbert):
    from sentence_transformers import CrossEncoder

    folder = tmp_path / "tiny-ce"
    saved = CrossEncoder(str(tiny_modernbert), num_labels=1, max_length=64)
    saved.save(str(folder))
    pairs = [("add two numbers", "def add(a, b): return a + b"), ("negate", "def neg(a): return -a")]
    np.testing.assert_allclose(load_cross_encoder(str(folder)).predict(pairs), saved.predict(pairs), rtol=1e-5)
    with pytest.raises(EmbedkitError, match="model not found"):
        load_cross_encoder(str(tmp_path / "missing"))
    with pytest.raises(EmbedkitError, match="could not load model 'nobody/no-such-reranker'"):
        load_cross_encoder("nobody/no-such-reranker")  # offline: one clear error, not the hub client's OSError


def test_reranking_and_mining_load_through_it(tmp_path):
    from embedkit.retrieve.rerank import load_reranker
    from embedkit.train.mining import MiningOptions, mine

    with pytest.raises(EmbedkitError, match="could not load model 'nobody/no-such-reranker'"):
        load_reranker("cross-encoder", "nobody/no-such-reranker")
    rows = [{"query": f"query {i}", "positive": f"document number {i} about topic {i % 3}"} for i in range(8)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(EmbedkitError, match="could not load model 'nobody/no-such-reranker'"):
        mine(data, tmp_path / "out.jsonl", "bm25", MiningOptions(num_negatives=1, range_max=4,
                                                                 cross_encoder="nobody/no-such-reranker"))
