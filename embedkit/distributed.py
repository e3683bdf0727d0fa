"""torchrun support: ranks from the environment, a process group, and index building split by shard."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@contextmanager
def dist_context() -> Iterator[tuple[int, int]]:
    """Join the torchrun process group when there is one (gloo on CPU, nccl on GPU)."""
    rank, world_size = world()
    if world_size == 1:
        yield rank, world_size
        return
    import torch
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    try:
        yield rank, world_size
    finally:
        if created:
            dist.destroy_process_group()


def build_index_distributed(model: str, corpus: Any, index_dir: str | Path, kind: str, options: Any) -> Path:
    """Every rank encodes its shards (i % world_size == rank); rank 0 merges them into one index."""
    import torch.distributed as dist

    from embedkit.index.build import build_index, finalize_index, get_backend

    encoder = get_backend(kind).load_encoder(model, options.batch_size, options.unpadded, options.max_length)
    build_index(model, corpus, index_dir, kind=kind, options=options, encoder=encoder)
    dist.barrier()
    if options.rank == 0:
        finalize_index(model, kind, corpus, Path(index_dir), encoder, options)
    dist.barrier()
    return Path(index_dir)
