"""The Index contract: build, open, add, delete (search and manifest are on the Index itself).

Every backend of the registry goes through the same steps: corpus → sharded, resumable encoding (the
model's kind decides the encoder) → ``backend.build`` → document store + manifest → atomic publication.

The encoded shards stay in the published folder (``shards/``, unless ``keep_shards`` is off), so a rebuild
of the same folder with another backend or other backend options encodes nothing: the shards are linked
into the new build and each is checked against the corpus before it is used.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path

from embedkit.artifacts import (
    check_replaceable,
    model_fingerprint,
    partial_path,
    publish_dir,
    read_json,
    versions,
    write_json,
)
from embedkit.config import (
    NOT_RECORDED,
    EncodeSettings,
    IndexSettings,
    narrow,
    recorded_settings,
    setting_differences,
)
from embedkit.data.corpus import Corpus, corpus_file
from embedkit.errors import EmbedkitError
from embedkit.index import encoders
from embedkit.index.base import MANIFEST, DocumentStore, Index, IndexManifest
from embedkit.index.encode import encode_corpus, list_shards
from embedkit.index.registry import (
    AUTO,
    NO_MODEL,
    check_available,
    check_quantization,
    detect_kind,
    encoder_kind,
    get_backend,
    kind_entry,
    resolve_backend,
)
from embedkit.models.encoder import Encoder

logger = logging.getLogger(__name__)


def _encode_settings(kind: str, model: str, settings: IndexSettings) -> dict:
    """What the encoded shards depend on besides the documents (each shard records a digest of those): not the
    backend, so changing the backend or nprobe reuses the shards."""
    return {"kind": kind, "model_fingerprint": model_fingerprint(model), "max_length": settings.max_length,
            "truncate_dim": settings.truncate_dim, "shard_size": settings.shard_size, "precision": settings.precision}


# IndexSettings fields that do not change what an index holds or returns.
_UNSCORED = ("batch_size", "keep_shards", *NOT_RECORDED)


def index_settings(settings: IndexSettings) -> dict:
    """The settings an index is built with, as its manifest records them (``settings["index_settings"]``):
    two builds with equal ones from the same documents and model hold the same index."""
    return recorded_settings(narrow(IndexSettings, settings), skip=_UNSCORED)


def corpus_stat(corpus: Corpus) -> list | None:
    """Path, size and modification time of a local corpus file (None for a hub dataset): a cheap first test
    of whether it changed since an index was built from it."""
    path = corpus_file(corpus.source)
    if path is None:
        return None
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _same_documents(manifest: IndexManifest, corpus: Corpus, fingerprint: str | None) -> bool:
    """Whether the index holds exactly ``corpus``'s documents: its recorded content fingerprint equals the
    corpus's (``fingerprint`` if known, else the file's unchanged size and time, else one pass over it)."""
    saved = manifest.settings.get("corpus_fingerprint")
    if not saved or manifest.settings.get("corpus_documents") != manifest.num_documents:
        return False  # built by an older embedkit, or documents were added or deleted since
    if fingerprint is None:
        stat = corpus_stat(corpus)
        if stat is not None and stat == manifest.settings.get("corpus_stat"):
            return True
        for _ in corpus:  # one pass; it also validates the corpus
            pass
        fingerprint = corpus.fingerprint
    return fingerprint == saved


def index_differences(index_dir: str | Path, model: str | None, corpus: Corpus, settings: IndexSettings,
                      kind: str | None = None, fingerprint: str | None = None) -> list[str] | None:
    """How the index in ``index_dir`` differs from the one ``build_index`` would make of ``corpus`` now: None
    when the folder holds no index, ``[]`` when it is the same (same documents, model, kind and settings).

    ``fingerprint`` is the corpus's content fingerprint when a pass over it already computed it.
    """
    if not (Path(index_dir) / MANIFEST).is_file():
        return None
    try:
        manifest = IndexManifest.load(index_dir)
    except EmbedkitError as exc:
        return [str(exc)]
    kind = encoder_kind(settings, model or NO_MODEL, kind)
    name = encoders.resolve(kind, model)
    changes = []
    if manifest.kind != kind:
        changes.append(f"kind: {manifest.kind} -> {kind}")
    if manifest.model_fingerprint != model_fingerprint(name):
        changes.append(f"model: {manifest.model} -> {name}" if manifest.model != name
                       else f"model: the files of {name} changed")
    saved = manifest.settings.get("index_settings")
    if saved is None:
        changes.append("settings: not recorded (an index built by an older embedkit)")
    else:
        # settings at their defaults are not recorded (RECORDED_WHEN_SET): compare both sides with them filled in
        defaults = asdict(IndexSettings())
        changes += setting_differences({**defaults, **saved}, {**defaults, **index_settings(settings)})
    if not changes and not _same_documents(manifest, corpus, fingerprint):
        changes.append(f"documents: {corpus.source} holds other documents than the index")
    return changes


def _forget_corpus(index_dir: str | Path) -> None:
    """After ``--add`` or ``--delete`` the index no longer holds the corpus it was built from: drop the record
    that says it does (so no rebuild is skipped, and no evaluation reuses it, on its strength)."""
    manifest = IndexManifest.load(index_dir)
    for key in ("corpus_fingerprint", "corpus_stat", "corpus_documents"):
        manifest.settings.pop(key, None)
    manifest.save(Path(index_dir))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # shard files are written once (tmp + rename), never changed in place
    except OSError:
        shutil.copy2(source, target)


def _adopt_shards(index_dir: Path, work: Path, settings: dict) -> int:
    """Link the shards an earlier build kept in ``index_dir/shards`` into ``work`` when they were encoded with
    ``settings``; ``encode_corpus`` then skips each one whose documents are still the corpus's there.
    Returns the number of shards adopted."""
    source = index_dir / "shards"
    states = sorted(source.glob("shards-rank*.json")) if source.is_dir() else []
    try:
        loaded = [read_json(path) for path in states]
    except EmbedkitError:
        return 0
    if not loaded or any(state.get("settings") != settings for state in loaded):
        return 0
    merged = {"settings": settings, "done": {}, "digests": {}}
    for state in loaded:
        merged["done"].update(state.get("done", {}))
        merged["digests"].update(state.get("digests", {}))
    target = work / "shards"
    target.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.is_file() and not file.name.startswith("shards-rank"):
            _link_or_copy(file, target / file.name)
    write_json(target / "shards-rank0.json", merged)
    return len(merged["done"])


def build_index(model: str | None, corpus: Corpus, index_dir: str | Path, settings: IndexSettings | None = None,
                kind: str | None = None, overwrite: bool = False, progress: bool = True,
                encoder: Encoder | None = None, rank: int = 0, world_size: int = 1,
                colbert_library: str = "auto") -> Path:
    """Encode ``corpus`` with ``model`` and publish the index at ``index_dir`` atomically.

    Work happens in ``<index_dir>.partial``; if the run is killed, the same call resumes from the shards
    already encoded there. ``encoder`` reuses an already loaded encoder of ``model``. ``model`` is None (or
    ``bm25``) for backends that need none. Under torchrun every rank encodes its shards and returns the work
    folder; ``finalize_index`` (rank 0) then merges them. ``colbert_library`` loads a colbert model.
    """
    settings = settings or IndexSettings()
    kind = encoder_kind(settings, model or NO_MODEL, kind)
    check_quantization(settings, kind)
    model = encoders.resolve(kind, model)
    index_dir = Path(index_dir)
    if index_dir.exists() or index_dir.is_symlink():
        check_replaceable(index_dir, MANIFEST, "an index")
        if not overwrite:
            raise EmbedkitError(f"{index_dir} already exists; pass --overwrite to rebuild it")
    check_available(settings.backend)
    if getattr(corpus, "fingerprint", "") is None:
        # one pass before the model loads: a bad line is named in seconds, with no work folder; its count
        # decides what backend auto stands for, whose optional library is then checked before any encoding
        count = sum(1 for _ in corpus)
        check_available(resolve_backend(settings, kind, count))
    if encoder is None:
        encoder = encoders.load_encoder(kind, model, settings, colbert_library)
    check_quantization(settings, kind, int(encoder.dim))
    preflight = getattr(get_backend(settings.backend), "preflight", None) if settings.backend != AUTO else None
    if preflight is not None and rank == 0:  # e.g. a server that must answer, a collection that must fit
        preflight(settings, int(encoder.dim), kind_entry(kind).multi_vector, bool(encoder.normalize), overwrite)
    shard_settings = _encode_settings(kind, model, settings)
    work = partial_path(index_dir)
    if rank == 0 and overwrite and work.exists() and _settings_differ(work, shard_settings):
        shutil.rmtree(work)
    if rank == 0 and not (work / "shards").exists():
        adopted = _adopt_shards(index_dir, work, shard_settings)
        if adopted:
            logger.debug("%s: %d encoded shards kept from its previous build are linked in", index_dir, adopted)
    if world_size > 1:
        from embedkit.distributed import barrier

        barrier()  # no rank writes shards before rank 0 has discarded a stale work folder
    encode_corpus(corpus, encoder.encode_documents, work, shard_settings, shard_size=settings.shard_size,
                  progress=progress, rank=rank, world_size=world_size,
                  prepare=encoder.prepare_documents)
    if world_size > 1:
        return work
    return finalize_index(model, kind, corpus, index_dir, encoder, settings, overwrite=overwrite)


def finalize_index(model: str, kind: str, corpus: Corpus, index_dir: Path, encoder: Encoder, settings: IndexSettings,
                   overwrite: bool = False) -> Path:
    """Fill the backend from the encoded shards and publish the folder with its manifest."""
    work = partial_path(index_dir)
    shards = list_shards(work)
    total = sum(s.count for s in shards)
    backend = get_backend(resolve_backend(settings, kind, total))
    with publish_dir(index_dir, overwrite=overwrite, manifest=MANIFEST, what="an index") as folder:
        backend_settings = backend.build(shards, folder, settings, int(encoder.dim))
        num = DocumentStore.write(folder, (doc for shard in shards for doc in shard.documents()))
        backend_settings.update(max_length=settings.max_length, truncate_dim=settings.truncate_dim,
                                effective_max_length=getattr(encoder, "document_length", None),
                                requested_backend=settings.backend, index_settings=index_settings(settings),
                                corpus_fingerprint=getattr(corpus, "fingerprint", None),
                                corpus_stat=corpus_stat(corpus), corpus_documents=num, precision=settings.precision,
                                **encoder.manifest)
        IndexManifest(kind=kind, backend=backend.name, model=str(model), model_fingerprint=model_fingerprint(model),
                      embedding_dim=int(encoder.dim), normalized=bool(encoder.normalize),
                      num_documents=num, corpus=corpus.source, settings=backend_settings,
                      versions=versions()).save(folder)
        if not settings.keep_shards:
            shutil.rmtree(folder / "shards", ignore_errors=True)
    logger.debug("index ready: %s (%s, %d documents)", index_dir, backend.name, num)
    return index_dir


def build_index_distributed(model: str, corpus: Corpus, index_dir: str | Path, settings: IndexSettings,
                            kind: str | None = None, overwrite: bool = False, rank: int = 0, world_size: int = 1,
                            colbert_library: str = "auto") -> Path:
    """Every rank encodes its shards (i % world_size == rank); rank 0 merges them into one index.

    The work folder (``<index_dir>.partial``) is shared, so the ranks must see one file system. A killed
    job resumes like a single process does: each rank skips the shards its state file records.
    """
    from embedkit.distributed import run_everywhere

    kind = encoder_kind(settings, model, kind)
    model = encoders.resolve(kind, model)
    encoder = encoders.load_encoder(kind, model, settings, colbert_library)
    run_everywhere(build_index, model, corpus, index_dir, settings, kind=kind, overwrite=overwrite, encoder=encoder,
                   rank=rank, world_size=world_size)
    run_everywhere(finalize_index, model, kind, corpus, Path(index_dir), encoder, settings, overwrite=overwrite,
                   only_rank0=True)
    return Path(index_dir)


def _check_model(index_dir: str | Path, manifest: IndexManifest, model: str | None) -> str:
    name = encoders.resolve(manifest.kind, model or manifest.model)
    if model_fingerprint(name) != manifest.model_fingerprint:
        raise EmbedkitError(f"{index_dir} was built with model {manifest.model!r}; {name!r} is a different model "
                            "(or it changed since). Rebuild the index with this model.")
    return name


def open_index(index_dir: str | Path, model: str | None = None, settings: EncodeSettings | None = None,
               encoder: Encoder | None = None, colbert_library: str = "auto") -> Index:
    """Load an index with the model it was built with; a different ``model`` is refused.

    ``settings`` give the batch size and the forward (``packed``) of the encoder loaded for it; what the
    documents were encoded with (length, truncated dimension, precision) is the index's own, from its manifest,
    so that queries and added documents are encoded alike.
    """
    manifest = IndexManifest.load(index_dir)
    backend = get_backend(manifest.backend)
    name = _check_model(index_dir, manifest, model)
    if encoder is None:
        own = manifest.settings
        settings = replace(settings or EncodeSettings(), max_length=own.get("max_length"),
                           truncate_dim=own.get("truncate_dim"), precision=own.get("precision", "fp32"))
        encoder = encoders.load_encoder(manifest.kind, name, settings, colbert_library)
    return backend.open(Path(index_dir), encoder)


def add_documents(index_dir: str | Path, documents: Iterable[tuple[str, str]], model: str | None = None,
                  settings: EncodeSettings | None = None, encoder: Encoder | None = None,
                  colbert_library: str = "auto") -> int:
    """Encode ``documents`` (``(id, text)`` pairs, e.g. a Corpus) as the index's own were and add them; return
    the new document count. ``settings`` as for :func:`open_index`."""
    count = open_index(index_dir, model, settings, encoder=encoder, colbert_library=colbert_library).add(documents)
    _forget_corpus(index_dir)
    return count


def delete_documents(index_dir: str | Path, ids: Iterable[str]) -> int:
    """Remove documents by id (no model needed); return the new document count."""
    manifest = IndexManifest.load(index_dir)
    count = get_backend(manifest.backend).open(Path(index_dir), None).delete(ids)
    _forget_corpus(index_dir)
    logger.info("%s now holds %d documents", index_dir, count)
    return count


def _settings_differ(work: Path, settings: dict) -> bool:
    states = list((work / "shards").glob("shards-rank*.json"))
    return any(read_json(p)["settings"] != settings for p in states)


__all__ = ["build_index", "open_index", "add_documents", "delete_documents", "detect_kind", "index_differences",
           "MANIFEST"]
