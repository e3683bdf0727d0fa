import numpy as np
import pytest

from embedkit.models.dense import DenseEncoder, load_dense_model

pytestmark = pytest.mark.packed


def test_token_budget_packing_path_equals_sentence_transformers(tiny_modernbert, code_pairs):
    """The packed encode path (whole token-budget batches, tokenised ahead) gives ST's embeddings."""
    texts = [p.code for p in code_pairs[:20]] + [p.query for p in code_pairs[:20]]
    reference = DenseEncoder(load_dense_model(str(tiny_modernbert)), packed="off").encode_documents(texts)
    packed = DenseEncoder(load_dense_model(str(tiny_modernbert)), packed="on")
    assert packed._packed and packed.pack_batches
    np.testing.assert_allclose(packed.encode_documents(texts), reference, atol=2e-5)


def test_prepared_documents_are_tokenised_ahead_and_used(tiny_modernbert, code_pairs):
    """prepare_documents submits texts to the host pipeline; the later encode call with the same texts uses that
    job (and drops none it still needs), with the same embeddings as an unprepared call."""
    texts = [p.code for p in code_pairs[:30]]
    first, second = texts[:15], texts[15:]
    reference = DenseEncoder(load_dense_model(str(tiny_modernbert)), packed="off")
    encoder = DenseEncoder(load_dense_model(str(tiny_modernbert)), packed="on")
    encoder.prepare_documents(first)
    encoder.prepare_documents(second)
    encoder.prepare_documents(list(second))  # an equal list announced twice is tokenised once
    assert len(encoder._prepared.jobs) == 2
    np.testing.assert_allclose(encoder.encode_documents(first), reference.encode_documents(first), atol=2e-5)
    assert [job.texts for job in encoder._prepared.jobs] == [second]
    np.testing.assert_allclose(encoder.encode_documents(list(second)), reference.encode_documents(second), atol=2e-5)
    assert encoder._prepared.jobs == []
