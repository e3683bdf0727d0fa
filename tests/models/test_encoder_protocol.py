"""Every encoder an index is built or searched with has what the Encoder protocol names (callers no longer probe
for optional members), and the ColBERT one also MaxSim."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedkit.models.encoder import Encoder, LateInteractionEncoder


def _members(protocol: type) -> set[str]:
    """The names a protocol declares, its bases' included."""
    return {name for cls in protocol.__mro__ if cls not in (object,) and getattr(cls, "_is_protocol", False)
            for name in vars(cls) if not name.startswith("_")}


def _missing(encoder: object, protocol: type) -> set[str]:
    return {name for name in _members(protocol) if not hasattr(encoder, name)}


def test_protocol_members():
    assert _members(Encoder) == {"dim", "normalize", "model", "manifest", "encode_documents", "encode_queries",
                                 "prepare_documents"}
    assert _members(LateInteractionEncoder) == _members(Encoder) | {"maxsim"}


def test_lexical_encoder():
    from embedkit.index.encoders import LexicalEncoder

    encoder = LexicalEncoder()
    assert not _missing(encoder, Encoder)
    assert encoder.model is None and encoder.manifest == {} and encoder.prepare_documents(["a"]) is None
    assert encoder.encode_queries(["a b"]) == ["a b"] and encoder.encode_documents(["a", "b"]).shape == (2, 0)


def test_dense_encoder_and_its_precision_wrapper(minilm_path):
    from embedkit.models.dense import DenseEncoder, load_dense_model
    from embedkit.models.precision import PrecisionEncoder, model_device

    encoder = DenseEncoder(load_dense_model(minilm_path, device="cpu"), batch_size=8)
    assert not _missing(encoder, Encoder)
    assert encoder.manifest == {} and encoder.dim == 384 and encoder.normalize
    wrapped = PrecisionEncoder(encoder, model_device(encoder), "fp32")
    assert not _missing(wrapped, Encoder)
    assert wrapped.model is encoder.model and wrapped.dim == 384 and model_device(wrapped) == torch.device("cpu")
    np.testing.assert_array_equal(wrapped.encode_queries(["read a file"]), encoder.encode_queries(["read a file"]))


@pytest.mark.colbert
def test_colbert_encoder_is_a_late_interaction_encoder(tiny_modernbert, colbert_library):
    from embedkit.config import ColbertConfig, ModelConfig
    from embedkit.models.colbert import ColbertEncoder, build_colbert_model

    model = build_colbert_model(ModelConfig(name=str(tiny_modernbert)), ColbertConfig(embedding_dim=8), device="cpu")
    encoder = ColbertEncoder(model, packed="off")
    assert not _missing(encoder, LateInteractionEncoder)
    assert encoder.manifest["colbert_library"] == colbert_library.name and encoder.model is model
    query, documents = encoder.encode_queries(["sort a list"])[0], encoder.encode_documents(["xs.sort()", "open()"])
    assert encoder.maxsim(query, documents).shape == (2,)
