"""Moving a ``qdrant`` index's points between its local shard and a Qdrant server collection.

``push``: the local shard's points are streamed (scroll, then upsert in bounded batches) into a collection on a
server or cluster, which the index then searches. ``pull``: a server collection's points are streamed into a new
local shard inside the index folder, which the index then searches. Point ids derive from document ids, so an
interrupted push or pull rerun writes the same points. Qdrant Edge 0.9 cannot write a snapshot of a local shard,
so points travel through the API both ways; a server's shard snapshot (``/collections/NAME/shards/0/snapshot``)
can also be unpacked into a local shard with ``qdrant_edge.EdgeShard.unpack_snapshot``, see docs/guides/qdrant.md.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from embedkit.config import QdrantConfig
from embedkit.errors import EmbedkitError
from embedkit.index.base import IndexManifest
from embedkit.index.qdrant_index import LOCAL_SHARD
from embedkit.index.qdrant_index import _open as open_local
from embedkit.index.qdrant_store import EdgeStore, ServerStore, VectorSpec

logger = logging.getLogger(__name__)


def copy_points(source: EdgeStore | ServerStore, target: EdgeStore | ServerStore, batch: int) -> int:
    """Upsert every point of ``source`` into ``target``, ``batch`` at a time; returns how many were copied."""
    copied = 0
    for doc_ids, vectors in source.scroll(batch):
        target.upsert(doc_ids, vectors)
        copied += len(doc_ids)
    target.finish()
    return copied


def _qdrant_manifest(index_dir: Path) -> IndexManifest:
    manifest = IndexManifest.load(index_dir)
    if "vector" not in manifest.settings:
        raise EmbedkitError(f"{index_dir} is a {manifest.backend} index; push and pull move qdrant indexes (move "
                            f"it first: embedkit index --index-dir {index_dir} --backend qdrant --overwrite ...)")
    return manifest


def push(index_dir: str | Path, config: QdrantConfig, overwrite: bool = False, client: Any = None) -> int:
    """Copy a local-shard index's points to the collection ``config`` names (``config.url``) and make the index
    search it there. Returns the number of points copied. ``client``: an existing QdrantClient."""
    index_dir = Path(index_dir)
    manifest = _qdrant_manifest(index_dir)
    if manifest.settings.get("url"):
        raise EmbedkitError(f"{index_dir} already searches {manifest.settings['url']}; push moves a local shard")
    if not config.url and client is None:
        raise EmbedkitError("push needs the server: --qdrant-url URL (and --qdrant-collection NAME)")
    spec = VectorSpec(**manifest.settings["vector"])
    local = open_local(index_dir, manifest)
    remote = ServerStore(config, spec, overwrite=overwrite, client=client)
    try:
        copied = copy_points(local, remote, config.upload_batch)
        if remote.count() != manifest.num_documents:
            raise EmbedkitError(f"collection {config.collection!r} holds {remote.count()} points after the push, "
                                f"the index {manifest.num_documents} documents (another corpus's points?); push "
                                "with --overwrite to recreate it")
    finally:
        local.close()
        remote.close()
    manifest.settings.update(url=config.url, collection=config.collection, api_key_env=config.api_key_env,
                             timeout=config.timeout, pushed_from=manifest.settings.get("path"))
    manifest.settings.pop("path", None)
    manifest.save(index_dir)
    logger.info("pushed %d points to %s collection %s", copied, config.url, config.collection)
    return copied


def pull(index_dir: str | Path, overwrite: bool = False, client: Any = None, batch: int = 256) -> int:
    """Copy the points of the server collection an index searches into a new local shard in its folder and make
    the index search that shard. Returns the number of points copied."""
    index_dir = Path(index_dir)
    manifest = _qdrant_manifest(index_dir)
    url = manifest.settings.get("url")
    if not url and client is None:
        raise EmbedkitError(f"{index_dir} searches a local shard already; pull copies a server collection into one")
    spec = VectorSpec(**manifest.settings["vector"])
    shard = index_dir / LOCAL_SHARD
    if shard.exists() and not overwrite:
        raise EmbedkitError(f"{shard} exists (an earlier shard of this index?); pass --overwrite to replace it")
    work = index_dir / (LOCAL_SHARD + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    config = QdrantConfig(url=url, collection=manifest.settings.get("collection", QdrantConfig.collection),
                          api_key_env=manifest.settings.get("api_key_env", QdrantConfig.api_key_env),
                          timeout=manifest.settings.get("timeout", QdrantConfig.timeout))
    remote = ServerStore(config, spec, create=False, client=client)
    local = EdgeStore(work, spec)
    try:
        copied = copy_points(remote, local, batch)
        if local.count() != manifest.num_documents:
            raise EmbedkitError(f"the collection holds {local.count()} points, the index {manifest.num_documents} "
                                "documents; it was changed outside this index")
    finally:
        local.close()
        remote.close()
    shutil.rmtree(shard, ignore_errors=True)
    work.rename(shard)
    manifest.settings.update(path=LOCAL_SHARD, pulled_from=f"{url} {config.collection}")
    manifest.settings.pop("url", None)
    manifest.save(index_dir)
    return copied
