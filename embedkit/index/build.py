"""The Index contract: build, open, add, delete (search and manifest are on the Index itself).

Every backend of the registry goes through the same steps: corpus → sharded, resumable encoding (the
model's kind decides the encoder) → ``backend.build`` → document store + manifest → atomic publication.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from embedkit.artifacts import model_fingerprint, partial_path, publish_dir, read_json, versions
from embedkit.config import IndexSettings
from embedkit.data.corpus import Corpus
from embedkit.errors import EmbedkitError
from embedkit.index import encoders
from embedkit.index.base import MANIFEST, DocumentStore, Index, IndexManifest
from embedkit.index.encode import encode_corpus, list_shards
from embedkit.index.registry import detect_kind, encoder_kind, get_backend, resolve_backend

logger = logging.getLogger(__name__)


def _encode_settings(kind: str, model: str, corpus: Corpus, settings: IndexSettings) -> dict:
    """What the encoded shards depend on (not the backend: changing nprobe reuses the shards)."""
    return {"kind": kind, "model_fingerprint": model_fingerprint(model), "corpus": corpus.source,
            "max_length": settings.max_length, "truncate_dim": settings.truncate_dim,
            "shard_size": settings.shard_size, "precision": settings.precision}


def build_index(model: str | None, corpus: Corpus, index_dir: str | Path, settings: IndexSettings | None = None,
                kind: str | None = None, unpadded: str = "auto", overwrite: bool = False, progress: bool = True,
                encoder: Any = None, rank: int = 0, world_size: int = 1) -> Path:
    """Encode ``corpus`` with ``model`` and publish the index at ``index_dir`` atomically.

    Work happens in ``<index_dir>.partial``; if the run is killed, the same call resumes from the shards
    already encoded there. ``encoder`` reuses an already loaded encoder of ``model``. ``model`` is None (or
    ``bm25``) for backends that need none. Under torchrun every rank encodes its shards and returns the work
    folder; ``finalize_index`` (rank 0) then merges them.
    """
    settings = settings or IndexSettings()
    kind = encoder_kind(settings, model or "bm25", kind)
    model = encoders.resolve(kind, model)
    index_dir = Path(index_dir)
    if index_dir.exists() and not overwrite:
        raise EmbedkitError(f"{index_dir} already exists; pass --overwrite to rebuild it")
    if encoder is None:
        encoder = encoders.load_encoder(kind, model, settings, unpadded)
    shard_settings = _encode_settings(kind, model, corpus, settings)
    work = partial_path(index_dir)
    if rank == 0 and overwrite and work.exists() and _settings_differ(work, shard_settings):
        shutil.rmtree(work)
    if world_size > 1:
        from embedkit.distributed import barrier

        barrier()  # no rank writes shards before rank 0 has discarded a stale work folder
    encode_corpus(corpus, encoder.encode_documents, work, shard_settings, shard_size=settings.shard_size,
                  progress=progress, rank=rank, world_size=world_size,
                  prepare=getattr(encoder, "prepare_documents", None))
    if world_size > 1:
        return work
    return finalize_index(model, kind, corpus, index_dir, encoder, settings, overwrite=overwrite)


def finalize_index(model: str, kind: str, corpus: Corpus, index_dir: Path, encoder: Any, settings: IndexSettings,
                   overwrite: bool = False) -> Path:
    """Fill the backend from the encoded shards and publish the folder with its manifest."""
    work = partial_path(index_dir)
    shards = list_shards(work)
    total = sum(s.count for s in shards)
    backend = get_backend(resolve_backend(settings, kind, total))
    with publish_dir(index_dir, overwrite=overwrite) as folder:
        backend_settings = backend.build(shards, folder, settings, int(encoder.dim))
        num = DocumentStore.write(folder, (doc for shard in shards for doc in shard.documents()))
        backend_settings.update(max_length=settings.max_length, truncate_dim=settings.truncate_dim,
                                requested_backend=settings.backend, precision=settings.precision)
        IndexManifest(kind=kind, backend=backend.name, model=str(model), model_fingerprint=model_fingerprint(model),
                      embedding_dim=int(encoder.dim), normalized=bool(getattr(encoder, "normalize", False)),
                      num_documents=num, corpus=corpus.source, settings=backend_settings,
                      versions=versions()).save(folder)
        shutil.rmtree(folder / "shards", ignore_errors=True)
    logger.info("index ready: %s (%s, %d documents)", index_dir, backend.name, num)
    return index_dir


def build_index_distributed(model: str, corpus: Corpus, index_dir: str | Path, settings: IndexSettings,
                            kind: str | None = None, unpadded: str = "auto", overwrite: bool = False,
                            rank: int = 0, world_size: int = 1) -> Path:
    """Every rank encodes its shards (i % world_size == rank); rank 0 merges them into one index.

    The work folder (``<index_dir>.partial``) is shared, so the ranks must see one file system. A killed
    job resumes like a single process does: each rank skips the shards its state file records.
    """
    from embedkit.distributed import run_everywhere

    kind = encoder_kind(settings, model, kind)
    model = encoders.resolve(kind, model)
    encoder = encoders.load_encoder(kind, model, settings, unpadded)
    run_everywhere(build_index, model, corpus, index_dir, settings, kind=kind, unpadded=unpadded,
                   overwrite=overwrite, encoder=encoder, rank=rank, world_size=world_size)
    run_everywhere(finalize_index, model, kind, corpus, Path(index_dir), encoder, settings, overwrite=overwrite,
                   only_rank0=True)
    return Path(index_dir)


def _check_model(index_dir: str | Path, manifest: IndexManifest, model: str | None) -> str:
    name = encoders.resolve(manifest.kind, model or manifest.model)
    if model_fingerprint(name) != manifest.model_fingerprint:
        raise EmbedkitError(f"{index_dir} was built with model {manifest.model!r}; {name!r} is a different model "
                            "(or it changed since). Rebuild the index with this model.")
    return name


def open_index(index_dir: str | Path, model: str | None = None, batch_size: int = 64, unpadded: str = "auto",
               max_length: int | None = None, encoder: Any = None) -> Index:
    """Load an index with the model it was built with; a different ``model`` is refused."""
    from embedkit.config import EncodeSettings

    manifest = IndexManifest.load(index_dir)
    backend = get_backend(manifest.backend)
    name = _check_model(index_dir, manifest, model)
    if encoder is None:
        encoder = encoders.load_encoder(manifest.kind, name, EncodeSettings(
            batch_size=batch_size, max_length=max_length or manifest.settings.get("max_length"),
            truncate_dim=manifest.settings.get("truncate_dim"),
            precision=manifest.settings.get("precision", "fp32")), unpadded)
    return backend.open(Path(index_dir), encoder)


def add_documents(index_dir: str | Path, documents: Iterable[tuple[str, str]], model: str | None = None,
                  batch_size: int = 64, unpadded: str = "auto", encoder: Any = None) -> int:
    """Encode ``documents`` (``(id, text)`` pairs, e.g. a Corpus) and add them; return the new document count."""
    manifest = IndexManifest.load(index_dir)
    return open_index(index_dir, model, batch_size=batch_size, unpadded=unpadded,
                      max_length=manifest.settings.get("max_length"), encoder=encoder).add(documents)


def delete_documents(index_dir: str | Path, ids: Iterable[str]) -> int:
    """Remove documents by id (no model needed); return the new document count."""
    manifest = IndexManifest.load(index_dir)
    count = get_backend(manifest.backend).open(Path(index_dir), None).delete(ids)
    logger.info("%s now holds %d documents", index_dir, count)
    return count


def _settings_differ(work: Path, settings: dict) -> bool:
    states = list((work / "shards").glob("shards-rank*.json"))
    return any(read_json(p)["settings"] != settings for p in states)


__all__ = ["build_index", "open_index", "add_documents", "delete_documents", "detect_kind", "MANIFEST"]
