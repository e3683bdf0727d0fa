import numpy as np
import pytest

from embedkit.models.dense import DenseEncoder, load_dense_model

pytestmark = pytest.mark.packed


def test_token_budget_packing_path_equals_sentence_transformers(tiny_modernbert, code_pairs):
    """The packed encode path (whole token-budget batches, tokenised ahead) gives ST's embeddings."""
    texts = [p.code for p in code_pairs[:20]] + [p.query for p in code_pairs[:20]]
    reference = DenseEncoder(load_dense_model(str(tiny_modernbert)), unpadded="off").encode_documents(texts)
    packed = DenseEncoder(load_dense_model(str(tiny_modernbert)), unpadded="on")
    assert packed._packed and packed.pack_batches
    np.testing.assert_allclose(packed.encode_documents(texts), reference, atol=2e-5)
