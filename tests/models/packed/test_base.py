"""The one packed encoder base: texts and ColBERT documents share its life cycle (submit, checks, fallback,
encode), and its edge cases behave the same for both."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from embedkit.models.packed.base import PackedEncoder
from embedkit.models.packed.documents import PackedDocumentEncoder, sentence_transformers_documents
from embedkit.models.packed.texts import PackedTextEncoder

pytestmark = pytest.mark.packed


def _text_encoder(st_reference) -> PackedTextEncoder:
    return PackedTextEncoder(copy.deepcopy(st_reference), max_tokens=64)


def _document_encoder(multivector_encoder) -> PackedDocumentEncoder:
    model = copy.deepcopy(multivector_encoder)
    return PackedDocumentEncoder(model, sentence_transformers_documents(model), max_tokens=64)


@pytest.fixture(params=["texts", "documents"])
def encoder(request, st_reference, multivector_encoder):
    built = _text_encoder(st_reference) if request.param == "texts" else _document_encoder(multivector_encoder)
    yield built
    built.close()


def test_both_encoders_are_the_one_base():
    for cls in (PackedTextEncoder, PackedDocumentEncoder):
        assert issubclass(cls, PackedEncoder)
        # only the two hooks are their own (and the settings their __init__ hands the base's); the life cycle is
        # written once, in the base
        for name in ("submit", "_ready", "encode", "_encode_job", "tokenizer_fn"):
            assert name not in vars(cls), f"{cls.__name__}.{name} overrides the base"
        assert {"_batch_output", "_reference"} <= set(vars(cls))


def test_empty_input_cancels_the_pending_job(encoder, texts):
    """A job submitted ahead for texts that never come (the caller encodes nothing) stops tokenising."""
    job = encoder.submit(texts)
    out = encoder.encode([], job=job)
    assert job.cancelled
    assert len(out) == 0
    if isinstance(out, np.ndarray):  # pooled: (0, dim), as a non-empty call's (n, dim)
        assert out.shape == (0, encoder.dim) and out.dtype == np.float32


def test_a_job_for_other_texts_is_cancelled_and_replaced(encoder, texts):
    stale = encoder.submit(texts[:3])
    first = encoder.encode(texts[3:6])  # no job: tokenised now
    again = encoder.encode(texts[3:6], job=stale)  # a job for other texts: cancelled, the right texts encoded
    assert stale.cancelled
    assert len(again) == len(first) == 3
    for a, b in zip(first, again):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_a_submitted_job_gives_what_encode_alone_gives(encoder, texts):
    alone = encoder.encode(texts)
    ahead = encoder.encode(texts, job=encoder.submit(texts))
    for a, b in zip(alone, ahead):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_default_token_budget_keeps_the_widest_cpu_activation_under_the_cap():
    from embedkit.models.packed.base import default_token_budget
    from embedkit.models.token_budget import ACTIVATION_BYTES

    cpu = torch.device("cpu")
    glu = torch.nn.Linear(8, 2304)  # ModernBERT-base's Wi: 2 x 1152
    assert default_token_budget(cpu, glu) == ACTIVATION_BYTES // (2304 * 4) < 4096
    assert default_token_budget(cpu, glu, "bf16") == ACTIVATION_BYTES // (2304 * 2)
    assert default_token_budget(cpu, torch.nn.Linear(8, 16)) == default_token_budget(cpu) == 4096  # never more
    assert default_token_budget(torch.device("cuda"), glu) == 65536


def test_default_token_budget_ignores_eager_attention_the_packed_forward_does_not_run(tiny_modernbert):
    from transformers import AutoModel

    from embedkit.models.packed.base import default_token_budget

    model = AutoModel.from_pretrained(str(tiny_modernbert), attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    assert default_token_budget(torch.device("cpu"), model) == 4096  # its scores would be heads x 8k positions
