"""ColBERT models from a recipe or a folder, in the library the registry picks, and the encoder indexes use."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedkit.config import ColbertConfig, ModelConfig, PackedMode
from embedkit.models.colbert.checkpoints import is_colbert_checkpoint
from embedkit.models.colbert.registry import ColbertLibrary, get_library, library_of, manifest_entry
from embedkit.models.loading import hub_error, remote_code_error, resolve_model

logger = logging.getLogger(__name__)

PROJECTION_SEED = 0  # a fresh projection (raw backbone or dense model) is seeded: "base" rows are repeatable


def build_colbert_model(model: ModelConfig, colbert: ColbertConfig, device: str | None = None) -> Any:
    """A ColBERT model in ``colbert.library``: a ColBERT checkpoint (any library's format) with the recipe's
    non-null ``colbert`` fields applied, or a backbone / dense model with a fresh, seeded projection and the
    markers, lengths and query expansion of ``colbert`` (null fields: ``COLBERT_FRESH_DEFAULTS``)."""
    import torch

    library = get_library(colbert.library)  # before anything is loaded: an unusable choice fails here
    name = resolve_model(model.name)
    fresh = not is_colbert_checkpoint(name)
    settings = colbert.for_fresh_model() if fresh else colbert
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PROJECTION_SEED)
            built = library.build(name, settings, fresh, device, model.trust_remote_code)
    except OSError as exc:
        raise hub_error(model.name, exc) from None
    except ValueError as exc:
        raise remote_code_error(model.name, exc) or exc from None
    if fresh:
        logger.info("%s: a ColBERT of this backbone with a fresh %d-d projection (%s)", model.name,
                    settings.embedding_dim, library.name)
    return built


def load_colbert_model(name: str, device: str | None = None, trust_remote_code: bool = False,
                       library: str = "auto") -> Any:
    """Load for encoding: a ColBERT checkpoint as it is; anything else gets a seeded, untrained projection."""
    return build_colbert_model(ModelConfig(name=name, trust_remote_code=trust_remote_code),
                               ColbertConfig(library=library), device)


@dataclass
class ColbertEncoder:
    """Token embeddings (L2-normalised) for documents and queries, through the model's own library.

    Queries are [MASK]-expanded to the model's query length; documents never are (PyLate's ``encode``
    defaults to query mode: the library entries always say which one they encode).
    """

    model: Any
    batch_size: int = 64
    show_progress: bool = False
    packed: PackedMode = "auto"
    library: ColbertLibrary | None = field(default=None, repr=False)  # default: the one the model belongs to

    def __post_init__(self) -> None:
        self.library = self.library or library_of(self.model)
        self.normalize = True
        self._packed = False
        self._documents: Any = None  # PackedDocumentEncoder, on first use
        from embedkit.models.packed import PreparedJobs

        self._prepared = PreparedJobs()
        if self.packed != "off":
            from embedkit.models.packed import enable_packed

            self._packed = enable_packed(self.model, mode=self.packed,
                                           padded_fallback=self.library.padded_query_length(self.model))
            if self._packed:
                logger.info("using the packed ModernBERT forward")

    @property
    def dim(self) -> int:
        return self.library.dim(self.model)

    @property
    def manifest(self) -> dict[str, str]:
        """What an index manifest records about the encoder: the ColBERT library and its version."""
        return manifest_entry(self.library)

    def set_document_length(self, length: int) -> None:
        self.library.set_document_length(self.model, length)

    @property
    def document_length(self) -> int | None:
        """The length in tokens documents are cut at (the model's document length, else its own maximum)."""
        return self.library.document_length(self.model)

    def _packed_documents(self) -> Any:
        """The packed document encoder of this model (built on first use), ``None`` when it is not packed."""
        if self._packed and self._documents is None:
            from embedkit.models.packed import PackedDocumentEncoder

            self._documents = PackedDocumentEncoder(self.model, self.library.document_side(self.model),
                                                    strict=self.packed == "on")
        return self._documents

    def prepare_documents(self, texts: list[str]) -> None:
        """Start tokenising ``texts`` for a coming :meth:`encode_documents` call (packed models; else nothing)."""
        documents = self._packed_documents()
        if documents is not None:
            self._prepared.add(texts, documents.submit)

    def encode_documents(self, texts: list[str]) -> list[np.ndarray]:
        documents = self._packed_documents()
        if documents is not None:
            # whole token-budget batches, tokenised ahead; queries keep the library's path (expansion, fixed length)
            return documents.encode(texts, job=self._prepared.take(texts), show_progress_bar=self.show_progress)
        return self.library.encode(self.model, texts, query=False, batch_size=self.batch_size,
                                   show_progress=self.show_progress)  # each (tokens_i, dim)

    def encode_queries(self, texts: list[str]) -> list[np.ndarray]:
        return self.library.encode(self.model, texts, query=True, batch_size=self.batch_size,
                                   show_progress=self.show_progress)  # each (query_length, dim)

    def maxsim(self, query: np.ndarray, documents: list[np.ndarray]) -> np.ndarray:
        """(num_documents,) ColBERT scores of one query against documents, by the library's scoring function."""
        return self.library.maxsim(query, documents)
