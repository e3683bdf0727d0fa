"""Losses by recipe name: a small registry instead of an if-chain."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from embedkit.config import LossConfig

logger = logging.getLogger(__name__)


def _gather(cfg: LossConfig) -> bool:
    """``gather_across_devices``, except on gloo (CPU) process groups: the gradient of the gather there is an
    all_to_all, which gloo lacks (``RuntimeError: Backend gloo does not support alltoall``)."""
    if not cfg.gather_across_devices or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return False
    import torch
    import torch.distributed as dist

    # CPU tensors go through gloo (the backend string may read "gloo", "cpu:gloo,cuda:nccl" or "undefined")
    backend = str(dist.get_backend()) if dist.is_initialized() else "gloo"
    gloo = not torch.cuda.is_available() and "mpi" not in backend
    if gloo:
        logger.warning("loss.gather_across_devices is off: the gloo (CPU) backend cannot gather with gradients; "
                       "each process uses its own batch for in-batch negatives")
    return not gloo


def _mnrl(model: Any, cfg: LossConfig) -> Any:
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, scale=cfg.scale, gather_across_devices=_gather(cfg))


def _cached_mnrl(model: Any, cfg: LossConfig) -> Any:
    from sentence_transformers.losses import CachedMultipleNegativesRankingLoss

    return CachedMultipleNegativesRankingLoss(model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size,
                                              gather_across_devices=_gather(cfg))


DENSE_LOSSES: dict[str, Callable[[Any, LossConfig], Any]] = {"mnrl": _mnrl, "cached_mnrl": _cached_mnrl}


def build_dense_loss(model: Any, cfg: LossConfig) -> Any:
    loss = DENSE_LOSSES[cfg.name](model, cfg)
    if cfg.matryoshka_dims:
        from sentence_transformers.losses import MatryoshkaLoss

        loss = MatryoshkaLoss(model, loss, matryoshka_dims=sorted(cfg.matryoshka_dims, reverse=True))
    return loss
