"""Encoders by kind: what turns texts into the vectors a backend stores (the only place models are loaded
for indexing and evaluation). The kinds and which loader each uses are in :data:`embedkit.index.registry.KINDS`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedkit.config import EncodeSettings
from embedkit.index.registry import NO_MODEL, encoder_loader, kind_entry
from embedkit.models.encoder import Encoder


@dataclass
class LexicalEncoder:
    """For backends that need no model (bm25): documents pass through as texts, with no vectors; queries are
    the texts themselves (the backend tokenises them)."""

    dim: int = 0
    normalize: bool = False
    model: None = None

    @property
    def manifest(self) -> dict[str, str]:
        return {}

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), 0), np.float32)  # (n, 0): the shard keeps the texts

    def encode_queries(self, texts: list[str]) -> list[str]:
        return texts

    def prepare_documents(self, texts: list[str]) -> None:
        """Nothing to prepare."""


def _packed(settings: EncodeSettings) -> str:
    """The packed ModernBERT forward is torch's; another model backend runs the exported padded graph (asked for
    with ``packed: on``, an error)."""
    from embedkit.errors import EmbedkitError
    from embedkit.models.backends import runs_torch

    if runs_torch(settings.model_backend):
        return settings.packed
    if settings.packed == "on":
        raise EmbedkitError(f"packed: on runs the packed ModernBERT forward, which is torch's: model_backend "
                            f"{settings.model_backend} runs its exported graph instead; set packed to auto or off, "
                            "or model_backend to torch")
    return "off"


def load_dense(model: str, settings: EncodeSettings, colbert_library: str) -> Encoder:
    from embedkit.models.dense import DenseEncoder, load_dense_model, set_truncate_dim
    from embedkit.models.loading import check_length

    check_length(model, settings.max_length, "max_length")
    packed = _packed(settings)
    st_model = load_dense_model(model)
    if settings.max_length:
        st_model.max_seq_length = settings.max_length
    encoder = DenseEncoder(st_model, batch_size=settings.batch_size, packed=packed)
    set_truncate_dim(encoder, settings.truncate_dim)  # Matryoshka: index and query with the first N dims
    return encoder


def load_colbert(model: str, settings: EncodeSettings, colbert_library: str) -> Encoder:
    from embedkit.errors import EmbedkitError
    from embedkit.models.colbert import ColbertEncoder, load_colbert_model

    if settings.truncate_dim:
        raise EmbedkitError("truncate_dim (--truncate-dim) is for dense Matryoshka models, not colbert")
    from embedkit.models.loading import check_length

    check_length(model, settings.max_length, "max_length")
    packed = _packed(settings)
    encoder = ColbertEncoder(load_colbert_model(model, library=colbert_library), batch_size=settings.batch_size,
                             packed=packed)
    if settings.max_length:
        encoder.set_document_length(settings.max_length)
    return encoder


def load_sparse(model: str, settings: EncodeSettings, colbert_library: str) -> Encoder:
    from embedkit.errors import EmbedkitError
    from embedkit.models.sparse import SparseVectorEncoder, load_sparse_model

    if settings.truncate_dim:
        raise EmbedkitError("truncate_dim (--truncate-dim) is for dense Matryoshka models, not sparse")
    packed = _packed(settings)
    st_model = load_sparse_model(model)
    if settings.max_length:
        st_model.max_seq_length = settings.max_length
    return SparseVectorEncoder(st_model, batch_size=settings.batch_size, packed=packed)


def load_lexical(model: str, settings: EncodeSettings, colbert_library: str) -> Encoder:
    return LexicalEncoder()


def resolve(kind: str, model: str | None) -> str:
    """The model an index of ``kind`` records: a checked local folder or hub id, or ``bm25`` for none."""
    if not kind_entry(kind).needs_model:
        return NO_MODEL
    from embedkit.models.loading import resolve_model

    return resolve_model(model or "")


def load_encoder(kind: str, model: str, settings: EncodeSettings | None = None,
                 colbert_library: str = "auto") -> Encoder:
    """The encoder of ``kind`` for ``model``, encoding as ``settings`` say (batch size, lengths, the packed
    forward); ``colbert_library`` (``ColbertConfig.library``) picks the ColBERT library that loads a colbert
    model. With ``settings.precision`` bf16 or int8, or ``settings.model_backend`` onnx or openvino, the encoder
    is wrapped to switch on its first texts, checked against torch fp32 there
    (:class:`~embedkit.models.precision.PrecisionEncoder`; bf16 is refused on CPUs without native bf16)."""
    load = encoder_loader(kind)
    settings = settings or EncodeSettings()
    encoder = load(model, settings, colbert_library)
    from embedkit.models.backends import switches

    if switches(settings.model_backend, settings.precision) and kind_entry(kind).needs_model:
        from embedkit.models.precision import PrecisionEncoder, model_device

        encoder = PrecisionEncoder(encoder, model_device(encoder), settings.precision, settings.model_backend)
    return encoder
