"""Build and open indexes: corpus → sharded encoding → backend (FAISS or PLAID) → published folder."""

from __future__ import annotations

import importlib
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from embedkit.artifacts import model_fingerprint, partial_path, publish_dir, versions
from embedkit.data.corpus import Corpus
from embedkit.errors import EmbedkitError
from embedkit.index.base import MANIFEST, DocumentStore, Index, IndexManifest
from embedkit.index.encode import encode_corpus, list_shards

logger = logging.getLogger(__name__)


class Backend(Protocol):
    """One per model kind: how to encode documents, fill the index, and open it again."""

    name: str

    def load_encoder(self, model: str, batch_size: int, unpadded: str, max_length: int | None = None) -> Any: ...

    def finalize(self, shards: list, encoder: Any, options: Any, folder: Path) -> dict: ...

    def open(self, folder: Path, encoder: Any) -> Index: ...


BACKENDS = {"dense": "embedkit.index.dense_backend:BACKEND", "colbert": "embedkit.index.colbert_backend:BACKEND"}


def get_backend(kind: str) -> Backend:
    if kind not in BACKENDS:
        raise EmbedkitError(f"unknown index kind {kind!r}; use one of {', '.join(BACKENDS)}")
    module, attr = BACKENDS[kind].split(":")
    return getattr(importlib.import_module(module), attr)


def detect_kind(model: str) -> str:
    """colbert for PyLate folders (their modules.json names a pylate module), dense otherwise."""
    modules = Path(model) / "modules.json"
    if modules.is_file() and "pylate" in modules.read_text(encoding="utf-8"):
        return "colbert"
    return "dense"


@dataclass
class BuildOptions:
    batch_size: int = 64
    shard_size: int = 8192
    unpadded: str = "auto"
    max_length: int | None = None
    truncate_dim: int | None = None  # dense Matryoshka models: index the first N dimensions only
    overwrite: bool = False
    progress: bool = True
    backend_options: Any = None
    rank: int = 0
    world_size: int = 1


def build_index(model: str, corpus: Corpus, index_dir: str | Path, kind: str | None = None,
                options: BuildOptions | None = None, encoder: Any = None) -> Path:
    """Encode ``corpus`` with ``model`` and publish the index at ``index_dir`` atomically.

    Work happens in ``<index_dir>.partial``; if the run is killed, the same call resumes from the
    shards already encoded there. ``encoder`` reuses an already loaded encoder of ``model``.
    """
    from embedkit.models.loading import resolve_model

    options = options or BuildOptions()
    model = resolve_model(model)
    kind = kind or detect_kind(model)
    backend = get_backend(kind)
    index_dir = Path(index_dir)
    if index_dir.exists() and not options.overwrite:
        raise EmbedkitError(f"{index_dir} already exists; pass --overwrite to rebuild it")
    fingerprint = model_fingerprint(model)
    if encoder is None:
        encoder = backend.load_encoder(model, options.batch_size, options.unpadded, options.max_length)
    if options.truncate_dim:
        from embedkit.models.dense import set_truncate_dim

        set_truncate_dim(encoder, options.truncate_dim)
    settings = {"kind": kind, "model_fingerprint": fingerprint, "corpus": corpus.source,
                "max_length": options.max_length,
                **({"truncate_dim": options.truncate_dim} if options.truncate_dim else {}),
                "backend_options": _plain(options.backend_options), "shard_size": options.shard_size}
    work = partial_path(index_dir)
    if options.rank == 0 and options.overwrite and work.exists() and _settings_differ(work, settings):
        shutil.rmtree(work)
    if options.world_size > 1:
        from embedkit.distributed import barrier

        barrier()  # no rank writes shards before rank 0 has discarded a stale work folder
    encode_corpus(corpus, encoder.encode_documents, work, settings, shard_size=options.shard_size,
                  progress=options.progress, rank=options.rank, world_size=options.world_size)
    if options.world_size > 1:
        return work  # rank 0 merges once every rank has finished (see embedkit.distributed)
    return finalize_index(model, kind, corpus, index_dir, encoder, options)


def finalize_index(model: str, kind: str, corpus: Corpus, index_dir: Path, encoder: Any,
                   options: BuildOptions) -> Path:
    backend = get_backend(kind)
    work = partial_path(index_dir)
    shards = list_shards(work)
    with publish_dir(index_dir, overwrite=options.overwrite) as folder:
        backend_settings = backend.finalize(shards, encoder, options.backend_options, folder)
        num = DocumentStore.write(folder, (doc for shard in shards for doc in shard.documents()))
        backend_settings["max_length"] = options.max_length
        if options.truncate_dim:
            backend_settings["truncate_dim"] = options.truncate_dim
        IndexManifest(kind=kind, backend=backend.name, model=str(model), model_fingerprint=model_fingerprint(model),
                      embedding_dim=int(encoder.dim), normalized=bool(getattr(encoder, "normalize", False)),
                      num_documents=num, corpus=corpus.source, settings=backend_settings,
                      versions=versions()).save(folder)
        shutil.rmtree(folder / "shards", ignore_errors=True)
    logger.info("index ready: %s (%d documents)", index_dir, num)
    return index_dir


def open_index(index_dir: str | Path, model: str | None = None, batch_size: int = 64, unpadded: str = "auto",
               max_length: int | None = None, encoder: Any = None) -> Index:
    """Load an index with the model it was built with; a different ``model`` is refused."""
    from embedkit.models.loading import resolve_model

    manifest = IndexManifest.load(index_dir)
    backend = get_backend(manifest.kind)
    name = resolve_model(model or manifest.model)
    if model_fingerprint(name) != manifest.model_fingerprint:
        raise EmbedkitError(f"{index_dir} was built with model {manifest.model!r}; {name!r} is a different model "
                            "(or it changed since). Rebuild the index with this model.")
    if encoder is None:
        encoder = backend.load_encoder(name, batch_size, unpadded, max_length)
    if manifest.settings.get("truncate_dim"):  # queries must be truncated like the documents were
        from embedkit.models.dense import set_truncate_dim

        set_truncate_dim(encoder, manifest.settings["truncate_dim"])
    return backend.open(Path(index_dir), encoder)


def _plain(value: Any) -> Any:
    return asdict(value) if hasattr(value, "__dataclass_fields__") else value


def _settings_differ(work: Path, settings: dict) -> bool:
    from embedkit.artifacts import read_json

    states = list((work / "shards").glob("shards-rank*.json"))
    return any(read_json(p)["settings"] != settings for p in states)


__all__ = ["BuildOptions", "build_index", "open_index", "detect_kind", "MANIFEST"]
