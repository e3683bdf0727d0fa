"""torchrun support: the process's rank and world size (read here only), the process group, barriers.

A leaf: it imports nothing of embedkit but ``errors``, so any stage can use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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
            try:
                dist.barrier()  # leave together: a rank tearing gloo down while another still talks to it aborts
            finally:
                dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op outside a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_succeeded(ok: bool) -> bool:
    """True when ``ok`` on every rank; used instead of a barrier so that one failing rank cannot leave
    the others waiting forever."""
    import torch
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    failed = torch.tensor([0 if ok else 1], device=device)
    dist.all_reduce(failed)
    return int(failed.item()) == 0


def world_size() -> int:
    return world()[1]


def run_everywhere(step, *args, only_rank0: bool = False, **kwargs) -> Any:
    """Run ``step(*args, **kwargs)`` on every rank (or rank 0 only); if it fails anywhere, every rank raises.

    Every keyword goes to ``step`` (a ``rank=`` too: this process's rank is read here, from torchrun)."""
    from embedkit.errors import EmbedkitError

    error: BaseException | None = None
    result = None
    if world()[0] == 0 or not only_rank0:
        try:
            result = step(*args, **kwargs)
        except Exception as exc:  # re-raised below, after every rank knows
            error = exc
    if not all_succeeded(error is None):
        if error is not None:
            raise error
        raise EmbedkitError("another process of this torchrun job failed; see its message above")
    return result
