"""The one place an index backend and an encoder kind are chosen: each name, what it is, and what ``auto`` stands
for. Other modules ask these entries their questions (does a kind need a model, does a backend keep token
vectors) instead of comparing names, so a backend or a kind is added here alone.

Implementations are named ``module:attribute`` and imported on first use (faiss, fast-plaid, bm25s and the
models are heavy).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from embedkit.config import IndexSettings
from embedkit.errors import EmbedkitError

if TYPE_CHECKING:
    from embedkit.models.encoder import Encoder

AUTO = "auto"  # the backend a recipe gets unless it names one: the kind's default (resolve_backend)
NO_MODEL = "bm25"  # the model name of indexes that need none (``embedkit eval --model bm25``, ``fuse_with: [bm25]``)


@dataclass(frozen=True)
class EncoderKind:
    """What fills an index: how texts become what a backend stores."""

    encoder: str                 # module:function (model, settings) -> encoder
    vectors: Literal["text", "token", "terms"] | None  # one vector per text, one per token, one weight per
    # vocabulary term (sparse), or none (texts kept as they are)
    family: str                  # what the paper's tables call retrievers of this kind

    @property
    def needs_model(self) -> bool:
        return self.vectors is not None

    @property
    def vector_per_text(self) -> bool:
        """Its models embed a text as one vector (dense: embeddings, inner-product scores, Matryoshka)."""
        return self.vectors == "text"

    @property
    def term_weights(self) -> bool:
        """Its models weigh vocabulary terms (sparse: SPLADE), scored by sparse dot products."""
        return self.vectors == "terms"

    @property
    def multi_vector(self) -> bool:
        """Its models are ColBERT models: built and loaded by a ColBERT library (``embedkit.models.colbert``)."""
        return self.vectors == "token"


LEXICAL = "lexical"  # the kind of indexes that need no model (NO_MODEL's)
KINDS: dict[str, EncoderKind] = {
    "dense": EncoderKind("embedkit.index.encoders:load_dense", "text", "DPR"),
    "colbert": EncoderKind("embedkit.index.encoders:load_colbert", "token", "ColBERT"),
    LEXICAL: EncoderKind("embedkit.index.encoders:load_lexical", None, "BM25"),
    "sparse": EncoderKind("embedkit.index.encoders:load_sparse", "terms", "SPLADE"),
}


@dataclass(frozen=True)
class BackendEntry:
    implementation: str          # module:attribute of the Backend
    kind: str                    # the encoder kind that fills it (a name of KINDS)
    token_vectors: bool = False  # stores every document's token vectors by position (tokens.npy, lengths.npy)
    requires: tuple[str, str] | None = None  # (module it imports, the embedkit extra that installs it)
    quantizable: bool = False    # index.quantization / shortlist_dim apply (a FAISS first pass over dense vectors)
    other_kinds: tuple[str, ...] = ()  # further encoder kinds it holds (qdrant: colbert as multi-vectors)

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind, *self.other_kinds)


BACKENDS: dict[str, BackendEntry] = {
    "flat": BackendEntry("embedkit.index.faiss_index:FLAT", "dense", quantizable=True),
    "hnsw": BackendEntry("embedkit.index.faiss_index:HNSW", "dense", quantizable=True),
    "ivfpq": BackendEntry("embedkit.index.faiss_index:IVFPQ", "dense"),
    "plaid": BackendEntry("embedkit.index.plaid_index:BACKEND", "colbert", requires=("fast_plaid", "plaid")),
    "exact": BackendEntry("embedkit.index.exact_index:BACKEND", "colbert", token_vectors=True),
    "bm25": BackendEntry("embedkit.index.bm25_index:BACKEND", LEXICAL),
    "sparse-exact": BackendEntry("embedkit.index.sparse_index:EXACT", "sparse"),
    "seismic": BackendEntry("embedkit.index.sparse_index:SEISMIC", "sparse", requires=("seismic", "sparse")),
    # One named vector per kind (embedkit.index.qdrant_index.vector_spec). A kind whose vectors Qdrant can hold
    # (sparse: a sparse named vector) joins other_kinds once it has a layout there.
    "qdrant": BackendEntry("embedkit.index.qdrant_index:BACKEND", "dense", other_kinds=("colbert",),
                            requires=("qdrant_edge", "qdrant")),
}

# index.quantization: how a quantizable backend's first pass stores vectors (module:attribute of a Quantizer in
# embedkit.index.quantized; none keeps float32, and is only a first pass with a shortlist_dim).
QUANTIZATIONS: dict[str, str] = {
    "none": "embedkit.index.quantized:FLOAT",
    "int8": "embedkit.index.quantized:INT8",
    "binary": "embedkit.index.quantized:BINARY",
}


class Backend(Protocol):
    """What every index backend implements; documents keep positions 0..n-1 in document-store order.

    ``manifest`` is an ``IndexManifest``, ``store`` a ``DocumentStore``, ``open`` returns an ``Index`` (all in
    ``embedkit.index.base``, which looks its backend up here: typed ``Any`` to keep the modules acyclic).
    """

    name: str
    kind: str  # which encoder fills it: a name of KINDS

    def build(self, shards: list, folder: Path, settings: IndexSettings, dim: int) -> dict:
        """Write the backend's files into ``folder``; return the settings recorded in the manifest."""

    def open(self, folder: Path, encoder: Encoder | None) -> Any: ...

    def append(self, folder: Path, manifest: Any, vectors: Any, store: Any) -> None:
        """Add encoded documents after the last position (``store`` already holds them)."""

    def remove(self, folder: Path, manifest: Any, positions: Any, store: Any) -> None:
        """Drop documents by position; the rest are renumbered in order (``store`` is already compacted)."""


def _resolve(path: str) -> Any:
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


def backend_entry(name: str) -> BackendEntry:
    if name not in BACKENDS:
        raise EmbedkitError(f"unknown index backend {name!r}; use one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


def check_available(name: str) -> None:
    """Refuse, before any work, a backend whose optional library is not installed, naming the install command
    (``auto`` is checked once the corpus size decides it: :func:`resolve_backend`)."""
    if name == AUTO:
        return
    entry = backend_entry(name)
    if entry.requires is None:
        return
    import importlib.util

    module, extra = entry.requires
    if importlib.util.find_spec(module) is None:
        raise EmbedkitError(f"index backend {name!r} needs {module}, which is not installed here: "
                            f"pip install 'embedkit[{extra}]'")


def get_backend(name: str) -> Backend:
    check_available(name)
    return _resolve(backend_entry(name).implementation)


def kind_entry(kind: str) -> EncoderKind:
    if kind not in KINDS:
        raise EmbedkitError(f"unknown encoder kind {kind!r}; embedkit knows {', '.join(KINDS)}")
    return KINDS[kind]


def encoder_loader(kind: str) -> Any:
    """The function that loads an encoder of ``kind`` (see ``embedkit.index.encoders.load_encoder``)."""
    return _resolve(kind_entry(kind).encoder)


def backends_of(kind: str) -> list[str]:
    return [name for name, entry in BACKENDS.items() if kind in entry.kinds]


def needs_model(backend: str) -> bool:
    """Whether an index of ``backend`` (a name, or ``auto``) is filled by a model: bm25 needs none."""
    return backend == AUTO or kind_entry(backend_entry(backend).kind).needs_model


def kind_of_label(label: str) -> EncoderKind | None:
    """The kind a results file's ``kind`` names: a kind, or a model-free backend standing for its kind
    (``bm25``); None for a label embedkit does not know."""
    label = label.lower()
    if label in KINDS:
        return KINDS[label]
    if label in BACKENDS:
        return KINDS[BACKENDS[label].kind]
    return None


def detect_kind(model: str) -> str:
    """colbert for ColBERT folders (PyLate, sentence-transformers MultiVectorEncoder or Stanford-NLP saves),
    sparse for SparseEncoder folders, lexical for ``bm25``, else dense. Only local folders are read: a hub id is
    dense unless told (``--kind``)."""
    if model == NO_MODEL:
        return LEXICAL
    from embedkit.models.colbert.checkpoints import is_colbert_checkpoint
    from embedkit.models.sparse import is_sparse_checkpoint

    if is_sparse_checkpoint(model):
        return "sparse"
    return "colbert" if is_colbert_checkpoint(model, local_only=True) else "dense"


def encoder_kind(settings: IndexSettings, model: str, kind: str | None = None) -> str:
    """The encoder kind a build needs: fixed by an explicit backend, else by the model; ``bm25`` (no model)
    is always lexical, whatever backend the neural models of the same run use."""
    if model == NO_MODEL:
        return LEXICAL
    model_kind = kind or detect_kind(model)
    if settings.backend == AUTO:
        return model_kind
    entry = backend_entry(settings.backend)
    if model_kind in entry.kinds:
        return model_kind
    wanted = entry.kind
    if KINDS[wanted].needs_model and model_kind != wanted:
        raise EmbedkitError(f"index backend {settings.backend!r} is for {' and '.join(entry.kinds)} models; {model} "
                            f"is a {model_kind} model (use {', '.join(backends_of(model_kind))} or auto)")
    return wanted


def resolve_backend(settings: IndexSettings, kind: str, num_documents: int) -> str:
    """The backend ``auto`` stands for: flat (dense), bm25 (no model), and for colbert exact MaxSim up to
    ``auto_exact_max_documents`` documents, PLAID above (see docs/measurements for the measured crossover)."""
    if settings.backend != AUTO and kind in backend_entry(settings.backend).kinds:
        return settings.backend
    if kind == "colbert":
        return "exact" if num_documents <= settings.auto_exact_max_documents else "plaid"
    if kind == "sparse":
        return "sparse-exact" if num_documents <= settings.auto_sparse_exact_max_documents else "seismic"
    return {"dense": "flat", LEXICAL: "bm25"}[kind]


def get_quantizer(name: str) -> Any:
    """The Quantizer of ``index.quantization`` ``name``."""
    if name not in QUANTIZATIONS:
        raise EmbedkitError(f"unknown index.quantization {name!r}; use one of {', '.join(QUANTIZATIONS)}")
    return _resolve(QUANTIZATIONS[name])


def compresses(settings: IndexSettings) -> bool:
    """Whether ``settings`` ask for a quantized or shortlisted first pass (rescored with full vectors)."""
    return settings.quantization != "none" or settings.shortlist_dim is not None


def check_quantization(settings: IndexSettings, kind: str, dim: int | None = None) -> None:
    """Refuse, before any work, quantization settings that cannot apply: quantization or a shortlist on an index
    that is not a dense FAISS one (colbert, bm25, ivfpq), a shortlist wider than the vectors (``dim``, once the
    model is loaded)."""
    get_quantizer(settings.quantization)  # the multiplier's and shortlist's lower bounds are the schema's
    if not compresses(settings):
        return
    what = (f"index.quantization {settings.quantization}" if settings.quantization != "none"
            else f"index.shortlist_dim {settings.shortlist_dim}")
    usable = [name for name, entry in BACKENDS.items() if entry.quantizable]
    if not KINDS[kind].vector_per_text:
        raise EmbedkitError(f"{what} applies to dense models (backends {', '.join(usable)}); this is a {kind} index "
                            f"(set index.quantization: none and no shortlist_dim)")
    if settings.backend != AUTO and not backend_entry(settings.backend).quantizable:
        raise EmbedkitError(f"{what} applies to backends {', '.join(usable)}, not {settings.backend} "
                            f"(ivfpq already compresses its vectors)")
    if dim is not None and settings.shortlist_dim is not None and settings.shortlist_dim > dim:
        raise EmbedkitError(f"index.shortlist_dim (--shortlist-dim) {settings.shortlist_dim} is larger than the "
                            f"model's embedding size {dim}")
