"""The colbert backend: PyLate encoder + PLAID (fast-plaid) or exact MaxSim."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.artifacts import model_fingerprint, partial_path, publish_dir, versions, write_json
from embedkit.errors import EmbedkitError
from embedkit.index.plaid_index import MultiVectorIndex, PlaidOptions, add_to_plaid, build_plaid

logger = logging.getLogger(__name__)


class ColbertBackend:
    name = "plaid"

    def load_encoder(self, model: str, batch_size: int, unpadded: str, max_length: int | None = None):
        from embedkit.models.colbert import ColbertEncoder, load_colbert_model

        colbert = load_colbert_model(model)
        if max_length:
            colbert.document_length = max_length
        return ColbertEncoder(colbert, batch_size=batch_size, unpadded=unpadded)

    def finalize(self, shards: list, encoder, options: PlaidOptions | None, folder: Path) -> dict:
        return build_plaid(shards, options or PlaidOptions(), folder)

    def open(self, folder: Path, encoder) -> MultiVectorIndex:
        return MultiVectorIndex(folder, encoder)


BACKEND = ColbertBackend()


def eval_options(exact: bool) -> PlaidOptions:
    return PlaidOptions(index_type="exact" if exact else "plaid")


def cli_options(args: Any) -> PlaidOptions:
    return PlaidOptions(index_type="exact" if getattr(args, "exact", False) else "plaid",
                        nbits=args.nbits, kmeans_niters=args.kmeans_niters, n_ivf_probe=args.n_ivf_probe,
                        n_full_scores=args.n_full_scores)


def add_documents(index_dir: str | Path, corpus, model: str | None = None, batch_size: int = 64,
                  unpadded: str = "auto", encoder: Any = None) -> int:
    """Encode ``corpus`` and append it to a colbert index; return the new document count.

    PLAID keeps its centroids (fast-plaid ``update``), so recall on the added documents can be a little
    lower than after a rebuild. The index is updated in a copy that replaces the original when complete.
    """
    from embedkit.index.base import DocumentStore, IndexManifest
    from embedkit.models.loading import resolve_model

    index_dir = Path(index_dir)
    manifest = IndexManifest.load(index_dir)
    if manifest.kind != "colbert":
        raise EmbedkitError(f"{index_dir}: adding documents is supported for colbert indexes, not {manifest.kind}")
    name = resolve_model(model or manifest.model)
    if model_fingerprint(name) != manifest.model_fingerprint:
        raise EmbedkitError(f"{index_dir} was built with model {manifest.model!r}; {name!r} is a different model")
    store = DocumentStore(index_dir)
    existing = set(store.ids)
    new = [(doc_id, text) for doc_id, text in corpus]
    clash = next((d for d, _ in new if d in existing), None)
    if clash is not None:
        raise EmbedkitError(f"{corpus.source}: document id {clash!r} is already in {index_dir}")
    if not new:
        return manifest.num_documents
    if encoder is None:
        encoder = BACKEND.load_encoder(name, batch_size, unpadded, manifest.settings.get("max_length"))
    vectors = []
    for start in range(0, len(new), 4096):
        vectors += encoder.encode_documents([t for _, t in new[start:start + 4096]])
    work = partial_path(index_dir)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(index_dir, work)
    with publish_dir(index_dir, overwrite=True) as folder:
        add_to_plaid(folder, manifest.settings, [v.astype(np.float16) for v in vectors])
        num = DocumentStore.append(folder, new)
        manifest.num_documents = num
        manifest.versions = versions()
        write_json(folder / "embedkit-index.json", asdict(manifest))
    logger.info("added %d documents to %s (%d in all)", len(new), index_dir, num)
    return num
