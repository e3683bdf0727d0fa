"""The index a user asks for by name (``embedkit index``, or Python): its inputs checked before any work, a
folder that already holds the same index kept, a different one refused unless ``overwrite``, and the build
(spread over the ranks under torchrun). The pipeline's index stage asks the same question with another policy
(:func:`embedkit.index.current.index_currency`, rebuild)."""

from __future__ import annotations

import logging
from pathlib import Path

from embedkit.artifacts import Policy, check_apart, check_replaceable, check_writable
from embedkit.config import IndexConfig
from embedkit.data.corpus import Corpus
from embedkit.data.inputs import check_local, check_local_or_hub
from embedkit.errors import EmbedkitError
from embedkit.index.base import MANIFEST
from embedkit.index.registry import BACKENDS, NO_MODEL, needs_model

logger = logging.getLogger(__name__)


def check_index_inputs(cfg: IndexConfig, model: str | None, add: bool = False) -> None:
    """Everything an index build or ``add`` reads and writes, checked before any work.

    Raises:
        EmbedkitError: no corpus, a model missing where the backend needs one, an input that is not there, an
            output that overlaps an input, cannot be written, or holds something that is not an index.
    """
    if not cfg.corpus:
        raise EmbedkitError("index needs --corpus (or --delete ID...)")
    check_local_or_hub(cfg.corpus, "--corpus", "dataset")
    if add:
        check_local(cfg.output_dir, "--index-dir", "folder")
    elif not model and needs_model(cfg.backend):
        model_free = " or ".join(f"--backend {name}" for name in BACKENDS if not needs_model(name))
        raise EmbedkitError(f"index needs --model (only {model_free} needs none)")
    if model and model != NO_MODEL:
        check_local_or_hub(model, "--model", "model")
    if not add:
        check_apart(cfg.output_dir, "--index-dir", [("--corpus", cfg.corpus), ("--model", model)])
        check_writable(cfg.output_dir, "--index-dir", "folder")
        check_replaceable(cfg.output_dir, MANIFEST, "an index")


def make_index(model: str | None, corpus: Corpus, cfg: IndexConfig, kind: str | None = None,
               overwrite: bool = False) -> str | Path | None:
    """The folder holding the index ``cfg`` describes (``cfg.output_dir``), built unless it already held this
    index (same documents, model and settings) and ``overwrite`` is off. Under torchrun every rank encodes its part
    and rank 0 publishes: the other ranks get None.

    Raises:
        EmbedkitError: the folder holds a different index and ``overwrite`` is off (which keys differ, and the way
            out).
    """
    from embedkit.distributed import dist_context
    from embedkit.index.build import build_index, build_index_distributed
    from embedkit.index.current import index_currency

    if not overwrite and not index_currency(cfg.output_dir, model, corpus, cfg, kind).must_make(Policy.REFUSE):
        logger.info("%s already holds this index: same documents, model and settings (--overwrite rebuilds it)",
                    cfg.output_dir)
        return cfg.output_dir
    with dist_context() as (rank, world_size):
        build = build_index_distributed if world_size > 1 else build_index
        path = build(model, corpus, cfg.output_dir, cfg, kind=kind, overwrite=overwrite, rank=rank,
                     world_size=world_size)
    return Path(path) if rank == 0 else None
