"""sentence-transformers ``CrossEncoder`` models, loaded in one place for every user: the cross-encoder reranker
(embedkit.retrieve.rerank) and the rescoring of mined hard negatives (embedkit.train.mining)."""

from __future__ import annotations

from typing import Any

from embedkit.models.loading import hub_error, remote_code_error, resolve_model


def load_cross_encoder(name: str, device: str | None = None) -> Any:
    """A ``CrossEncoder`` from a local folder or a Hugging Face id, with the clear errors of any model load (a
    path that holds no model, an unreachable hub, a model that ships its own code)."""
    from sentence_transformers import CrossEncoder

    path = resolve_model(name)
    try:
        return CrossEncoder(path, device=device)
    except OSError as exc:
        raise hub_error(name, exc) from None
    except ValueError as exc:
        raise remote_code_error(name, exc) or exc from None
