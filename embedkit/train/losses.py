"""Losses by recipe name: a small registry instead of an if-chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from embedkit.config import LossConfig


def _mnrl(model: Any, cfg: LossConfig) -> Any:
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, scale=cfg.scale, gather_across_devices=cfg.gather_across_devices)


def _cached_mnrl(model: Any, cfg: LossConfig) -> Any:
    from sentence_transformers.losses import CachedMultipleNegativesRankingLoss

    return CachedMultipleNegativesRankingLoss(model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size,
                                              gather_across_devices=cfg.gather_across_devices)


DENSE_LOSSES: dict[str, Callable[[Any, LossConfig], Any]] = {"mnrl": _mnrl, "cached_mnrl": _cached_mnrl}


def build_dense_loss(model: Any, cfg: LossConfig) -> Any:
    loss = DENSE_LOSSES[cfg.name](model, cfg)
    if cfg.matryoshka_dims:
        from sentence_transformers.losses import MatryoshkaLoss

        loss = MatryoshkaLoss(model, loss, matryoshka_dims=sorted(cfg.matryoshka_dims, reverse=True))
    return loss
