"""Losses by recipe name: the one place loss names are declared, with the kind and data each one trains on.

Recipes are checked against it when loaded (:mod:`embedkit.train.recipes`: ``loss.name`` fits the kind and
``data.format``, or is filled in with the default). Builders receive the recipe's ``LossConfig`` (``cfg``) and
the number of training processes; the heavy libraries are imported inside them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from embedkit.config import LossConfig

logger = logging.getLogger(__name__)


PAIRS = "pairs"  # the data.format of (query, positive, negatives...) rows, which most losses read
DISTILLATION = "distillation"  # the data.format of queries, documents and teacher scores (lightonai/ms-marco-en-bge)


@dataclass(frozen=True)
class LossSpec:
    kind: str                    # the recipe kind it trains: dense | colbert | sparse
    build: Callable[..., Any]    # (model, cfg, world_size[, the recipe's section]) -> loss
    data_format: str = PAIRS     # the data.format it reads: pairs | distillation
    section: str | None = None   # a recipe section the builder also reads (sparse: regulariser weights)


def _gather(cfg: LossConfig, world_size: int) -> bool:
    """``gather_across_devices`` only across several processes (PyLate warns on every step otherwise), and never
    on gloo (CPU) process groups: the gradient of the gather there is an all_to_all, which gloo lacks
    (``RuntimeError: Backend gloo does not support alltoall``)."""
    if not cfg.gather_across_devices or world_size == 1:
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


def _mnrl(model: Any, cfg: LossConfig, world_size: int) -> Any:
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, scale=cfg.scale, gather_across_devices=_gather(cfg, world_size))


def _cached_mnrl(model: Any, cfg: LossConfig, world_size: int) -> Any:
    from sentence_transformers.losses import CachedMultipleNegativesRankingLoss

    return CachedMultipleNegativesRankingLoss(model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size,
                                              gather_across_devices=_gather(cfg, world_size))


# ColBERT losses come from the model's own library (embedkit.models.colbert: sentence-transformers'
# MultiVectorEncoder losses, or PyLate's), whichever the recipe's colbert.library built the model with.

def _contrastive(model: Any, cfg: LossConfig, world_size: int) -> Any:
    from embedkit.models.colbert import library_of

    return library_of(model).contrastive_loss(model, gather=_gather(cfg, world_size))  # in-batch negatives, MaxSim


def _cached_contrastive(model: Any, cfg: LossConfig, world_size: int) -> Any:
    from embedkit.models.colbert import library_of

    return library_of(model).cached_contrastive_loss(model, mini_batch_size=cfg.mini_batch_size,
                                                     gather=_gather(cfg, world_size))


def _distillation(model: Any, cfg: LossConfig, world_size: int) -> Any:
    from embedkit.models.colbert import library_of

    return library_of(model).distillation_loss(model)  # KL(teacher || student) over each query's scored documents


# Sparse (SPLADE) losses: sentence-transformers' SpladeLoss (FLOPS regularisers on queries and documents, weights
# from the recipe's sparse section) around a ranking loss.

def _splade(model: Any, inner: Any, sparse: Any, cached: bool = False, mini_batch_size: int = 32) -> Any:
    from sentence_transformers.sparse_encoder.losses import CachedSpladeLoss, SpladeLoss

    _check_architecture(sparse, False, "a SpladeLoss")
    weights = dict(document_regularizer_weight=sparse.document_regularizer_weight,
                   query_regularizer_weight=sparse.query_regularizer_weight or None)
    if cached:
        return CachedSpladeLoss(model, inner, mini_batch_size=mini_batch_size, **weights)
    return SpladeLoss(model, inner, **weights)


def _check_architecture(sparse: Any, want_csr: bool, name: str) -> None:
    from embedkit.errors import EmbedkitError

    if (sparse.architecture == "csr") != want_csr:
        use = "csr" if sparse.architecture == "csr" else "splade, cached_splade or splade_distillation"
        raise EmbedkitError(f"loss.name: {name} does not train sparse.architecture: {sparse.architecture}; use {use}")


def _csr(model: Any, cfg: LossConfig, world_size: int, sparse: Any) -> Any:
    """CSRLoss: reconstruction of the pooled dense vector by the sparse autoencoder + the sparse MNRL."""
    from sentence_transformers.sparse_encoder.losses import CSRLoss, SparseMultipleNegativesRankingLoss

    _check_architecture(sparse, True, "csr")
    inner = SparseMultipleNegativesRankingLoss(model, gather_across_devices=_gather(cfg, world_size))
    return CSRLoss(model, loss=inner)


def _sparse_mnrl(model: Any, cfg: LossConfig, world_size: int, sparse: Any) -> Any:
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss

    # sentence-transformers' scale for dot-product sparse scores (1.0), not the dense loss.scale
    inner = SparseMultipleNegativesRankingLoss(model, gather_across_devices=_gather(cfg, world_size))
    return _splade(model, inner, sparse)


def _cached_sparse_mnrl(model: Any, cfg: LossConfig, world_size: int, sparse: Any) -> Any:
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss

    inner = SparseMultipleNegativesRankingLoss(model, gather_across_devices=_gather(cfg, world_size))
    return _splade(model, inner, sparse, cached=True, mini_batch_size=cfg.mini_batch_size)


def _sparse_distillation(model: Any, cfg: LossConfig, world_size: int, sparse: Any) -> Any:
    from sentence_transformers.sparse_encoder.losses import SparseDistillKLDivLoss

    return _splade(model, SparseDistillKLDivLoss(model), sparse)  # KL(teacher || student) over each query's list


LOSSES: dict[str, LossSpec] = {
    "mnrl": LossSpec("dense", _mnrl),
    "cached_mnrl": LossSpec("dense", _cached_mnrl),
    "contrastive": LossSpec("colbert", _contrastive),
    "cached_contrastive": LossSpec("colbert", _cached_contrastive),
    "distillation": LossSpec("colbert", _distillation, data_format=DISTILLATION),
    "splade": LossSpec("sparse", _sparse_mnrl, section="sparse"),
    "cached_splade": LossSpec("sparse", _cached_sparse_mnrl, section="sparse"),
    "splade_distillation": LossSpec("sparse", _sparse_distillation, data_format=DISTILLATION, section="sparse"),
    "csr": LossSpec("sparse", _csr, section="sparse"),
}
# What a recipe trains with on pairs when it names no loss: in-batch negatives over its (query, positive) pairs.
DEFAULT_LOSS = {"dense": "mnrl", "colbert": "contrastive", "sparse": "splade"}


def losses_for(kind: str) -> list[str]:
    return [name for name, spec in LOSSES.items() if spec.kind == kind]


def default_loss(kind: str, data_format: str) -> str:
    """The loss a recipe trains with when it names none: the kind's on pairs, else the kind's loss that reads its
    data format (or any kind's, which the check that follows refuses)."""
    if data_format == PAIRS:
        return DEFAULT_LOSS[kind]
    readers = [name for name, spec in LOSSES.items() if spec.data_format == data_format]
    return next((name for name in readers if LOSSES[name].kind == kind), readers[0])


def build_loss(model: Any, cfg: LossConfig, world_size: int = 1, recipe: Any = None) -> Any:
    """The loss ``cfg.name`` for ``model``, wrapped in MatryoshkaLoss when ``matryoshka_dims`` asks for it.
    ``world_size``: training processes (torchrun), across which in-batch negatives may be shared; ``recipe``
    gives the section a loss also reads (``LossSpec.section``)."""
    spec = LOSSES[cfg.name]
    extra = (getattr(recipe, spec.section),) if spec.section else ()
    loss = spec.build(model, cfg, world_size, *extra)
    if cfg.matryoshka_dims:
        from sentence_transformers.losses import MatryoshkaLoss

        loss = MatryoshkaLoss(model, loss, matryoshka_dims=sorted(cfg.matryoshka_dims, reverse=True))
    return loss
