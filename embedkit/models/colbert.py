"""Multi-vector (ColBERT) models with PyLate: built from a recipe or loaded from a folder, and an encoder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedkit.config import ColbertConfig, ModelConfig
from embedkit.models.loading import hub_error, resolve_model

logger = logging.getLogger(__name__)

PROJECTION_SEED = 0  # a fresh projection (raw backbone or ST model) is seeded: "base" rows are repeatable


def is_pylate_folder(name: str) -> bool:
    modules = Path(name) / "modules.json"
    return modules.is_file() and "pylate" in modules.read_text(encoding="utf-8")


def build_colbert_model(model: ModelConfig, colbert: ColbertConfig, device: str | None = None):
    """A PyLate ColBERT for training: a PyLate folder as is, else backbone + a seeded linear projection."""
    import torch
    from pylate import models

    name = resolve_model(model.name)
    kwargs = dict(embedding_size=colbert.embedding_dim, query_prefix=colbert.query_prefix,
                  document_prefix=colbert.document_prefix, query_length=colbert.query_length,
                  document_length=colbert.document_length, trust_remote_code=model.trust_remote_code)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PROJECTION_SEED)
            return models.ColBERT(model_name_or_path=name, device=device, **kwargs)
    except OSError as exc:
        raise hub_error(model.name, exc) from None


def load_colbert_model(name: str, device: str | None = None, trust_remote_code: bool = False):
    """Load for encoding. A folder that is not a PyLate model gets a seeded, untrained projection."""
    import torch
    from pylate import models

    path = resolve_model(name)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PROJECTION_SEED)
            return models.ColBERT(model_name_or_path=path, device=device, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise hub_error(name, exc) from None


@dataclass
class ColbertEncoder:
    """Token embeddings (L2-normalised by PyLate) for documents and queries.

    PyLate's ``encode`` defaults to ``is_query=True`` (query expansion with [MASK] to ``query_length``);
    documents must be encoded with ``is_query=False``, which this class always does.
    """

    model: object
    batch_size: int = 64
    show_progress: bool = False
    unpadded: str = "auto"

    def __post_init__(self) -> None:
        self.normalize = True
        self._packed = False
        if self.unpadded != "off":
            from embedkit.models.modernbert_unpadded import enable_unpadded

            self._packed = enable_unpadded(self.model, mode=self.unpadded)
            if self._packed:
                logger.info("using the packed (unpadded) ModernBERT forward")

    @property
    def dim(self) -> int:
        return int(self.model[-1].out_features)

    def _encode(self, texts: list[str], is_query: bool) -> list[np.ndarray]:
        if not texts:
            return []
        out = self.model.encode(texts, is_query=is_query, batch_size=self.batch_size, convert_to_numpy=True,
                                show_progress_bar=self.show_progress)
        return [np.ascontiguousarray(e, dtype=np.float32) for e in out]  # each (tokens_i, dim)

    def encode_documents(self, texts: list[str]) -> list[np.ndarray]:
        if self._packed:
            from embedkit.models.packed_encoding import encode_packed_documents

            # whole token-budget batches, tokenised ahead; queries keep PyLate's path (expansion, fixed length)
            return encode_packed_documents(self.model, texts, show_progress_bar=self.show_progress,
                                           strict=self.unpadded == "on")
        return self._encode(texts, is_query=False)

    def encode_queries(self, texts: list[str]) -> list[np.ndarray]:
        return self._encode(texts, is_query=True)  # each (query_length, dim)
