"""The Encoder protocol: what turns texts into what an index stores and searches with.

Every encoder an index is built or searched with implements it: :class:`~embedkit.models.dense.DenseEncoder`
(one vector a text), :class:`~embedkit.models.colbert.encoder.ColbertEncoder` (one vector a token, and
MaxSim: :class:`LateInteractionEncoder`), ``LexicalEncoder`` (no model: bm25 reads the texts themselves) and
:class:`~embedkit.models.precision.PrecisionEncoder` (any of them in bf16). They are matched by shape, not
by inheritance.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

# dense: (n, dim) float32; colbert: one (tokens_i, dim) array a text; lexical queries: the texts themselves
Encoded = np.ndarray | list[np.ndarray] | list[str]


class Encoder(Protocol):
    @property
    def dim(self) -> int:
        """The size of one vector (0 for an encoder without vectors)."""

    @property
    def normalize(self) -> bool:
        """Whether vectors are L2-normalised (inner product is then the cosine)."""

    @property
    def model(self) -> Any:
        """The loaded model (a ``SentenceTransformer``, a ColBERT model of its library), ``None`` without one."""

    @property
    def manifest(self) -> dict[str, str]:
        """What an index manifest records about the encoder besides its model (e.g. the ColBERT library)."""

    def encode_documents(self, texts: list[str]) -> Encoded: ...

    def encode_queries(self, texts: list[str]) -> Encoded: ...

    def prepare_documents(self, texts: list[str]) -> None:
        """Start preparing (tokenising) ``texts`` for a coming :meth:`encode_documents` call; may do nothing."""


class LateInteractionEncoder(Encoder, Protocol):
    """A multi-vector (ColBERT) encoder: one vector a token, scored by MaxSim."""

    def encode_documents(self, texts: list[str]) -> list[np.ndarray]: ...  # each (tokens_i, dim)

    def encode_queries(self, texts: list[str]) -> list[np.ndarray]: ...  # each (query_length, dim)

    def maxsim(self, query: np.ndarray, documents: list[np.ndarray]) -> np.ndarray:
        """(num_documents,) scores of one query's token vectors against each document's."""
