"""Fixtures of the training tests."""

from __future__ import annotations

import pytest


def collate_colbert_features(library_name: str, model, rows: list[dict]) -> list[dict]:
    """Tokenised training features per column (query first), as the library's trainer hands them to a loss."""
    columns = list(rows[0])
    if library_name == "sentence-transformers":
        from sentence_transformers.multi_vector_encoder import MultiVectorEncoderDataCollator

        prompts = {c: model.prompts["query"] if i == 0 else model.prompts["document"] for i, c in enumerate(columns)}
        batch = MultiVectorEncoderDataCollator(preprocess_fn=model.preprocess, prompts=prompts)(rows)
    else:
        from pylate import utils

        batch = utils.ColBERTCollator(tokenize_fn=model.tokenize)(rows)
    return [{k[len(c) + 1:]: v for k, v in batch.items() if k.startswith(c + "_")} for c in columns]


@pytest.fixture(scope="session")
def colbert_features(colbert_library):
    """Batch rows into per-column training features with this environment's library's collator."""
    return lambda model, rows: collate_colbert_features(colbert_library.name, model, rows)
