"""Is this index current? The index side of the one answer (:class:`~embedkit.artifacts.Currency`): whether a
folder holds the index :func:`~embedkit.index.build.build_index` would make now of a corpus (same documents,
model, kind and settings), and if not, how it differs. Callers act on it with their own policy: ``embedkit
index`` refuses, ``embedkit run`` rebuilds, evaluation encodes the corpus elsewhere."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from embedkit.artifacts import Currency, model_fingerprint, recorded_differences
from embedkit.config import IndexSettings
from embedkit.data.corpus import Corpus
from embedkit.errors import EmbedkitError
from embedkit.index import encoders
from embedkit.index.base import MANIFEST, IndexManifest
from embedkit.index.build import corpus_stat, index_settings
from embedkit.index.registry import NO_MODEL, encoder_kind

# What a refusal tells the user to do (the CLI's flags; the pipeline rebuilds instead of refusing).
REMEDY = "pass --overwrite to replace it, or choose another --index-dir"


def index_currency(index_dir: str | Path, model: str | None, corpus: Corpus, settings: IndexSettings,
                   kind: str | None = None, fingerprint: str | None = None) -> Currency:
    """Whether ``index_dir`` holds the index ``build_index`` would make of ``corpus`` now: absent (no index
    there), current, or the differences (``kind``, ``model``, each setting as ``key: recorded -> wanted``, then
    ``documents``). ``fingerprint`` is the corpus's content fingerprint when a pass over it already computed it."""
    return Currency(str(index_dir), _differences(index_dir, model, corpus, settings, kind, fingerprint),
                    found="already holds another index", remedy=REMEDY)


def _differences(index_dir: str | Path, model: str | None, corpus: Corpus, settings: IndexSettings,
                 kind: str | None, fingerprint: str | None) -> tuple[str, ...] | None:
    if not (Path(index_dir) / MANIFEST).is_file():
        return None
    try:
        manifest = IndexManifest.load(index_dir)
    except EmbedkitError as exc:
        return (str(exc),)
    kind = encoder_kind(settings, model or NO_MODEL, kind)
    name = encoders.resolve(kind, model)
    changes: list[str] = []
    if manifest.kind != kind:
        changes.append(f"kind: {manifest.kind} -> {kind}")
    if manifest.model_fingerprint != model_fingerprint(name):
        changes.append(f"model: {manifest.model} -> {name}" if manifest.model != name
                       else f"model: the files of {name} changed")
    saved = manifest.settings.get("index_settings")
    if saved is None:
        changes.append("settings: not recorded (an index built by an older embedkit)")
    else:
        # settings at their defaults are not recorded (RECORDED_WHEN_SET): both sides are compared with them filled in
        changes += recorded_differences(saved, index_settings(settings), defaults=asdict(IndexSettings()))
    if not changes and not _same_documents(manifest, corpus, fingerprint):
        changes.append(f"documents: {corpus.source} holds other documents than the index")
    return tuple(changes)


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
