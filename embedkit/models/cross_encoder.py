"""sentence-transformers ``CrossEncoder`` models, loaded in one place for every user: the cross-encoder reranker
(embedkit.retrieve.rerank) and the rescoring of mined hard negatives (embedkit.train.mining)."""

from __future__ import annotations

from typing import Any

from embedkit.models.loading import hub_error, remote_code_error, resolve_model

CHECK_PAIRS = [("how to sort a list", "def sort(xs): return sorted(xs)"), ("open a file", "with open(p) as f: pass"),
               ("what is the capital of France", "Paris is the capital and largest city of France."),
               ("parse json", "import json\njson.loads(text)")]


def load_cross_encoder(name: str, device: str | None = None, model_backend: str = "torch",
                       precision: str = "fp32") -> Any:
    """A ``CrossEncoder`` from a local folder or a Hugging Face id, with the clear errors of any model load (a
    path that holds no model, an unreachable hub, a model that ships its own code).

    ``model_backend`` onnx / openvino (and ``precision`` int8 there) runs its transformer on that runtime
    (:mod:`embedkit.models.backends`); its scores of :data:`CHECK_PAIRS` are checked against torch fp32 at load, an
    :class:`~embedkit.errors.EmbedkitError` when they differ."""
    from sentence_transformers import CrossEncoder

    path = resolve_model(name)
    try:
        model = CrossEncoder(path, device=device)
    except OSError as exc:
        raise hub_error(name, exc) from None
    except ValueError as exc:
        raise remote_code_error(name, exc) or exc from None
    from embedkit.models.backends import switches

    if switches(model_backend, precision):
        _switch_and_check(model, model_backend, precision)
    return model


def _switch_and_check(model: Any, model_backend: str, precision: str) -> None:
    import numpy as np

    from embedkit.errors import EmbedkitError
    from embedkit.models.backends import backend_entry, switch, tolerance
    from embedkit.models.precision import require_bf16

    backend_entry(model_backend, precision)
    if precision == "bf16":
        require_bf16(model.device)
    expected = np.asarray(model.predict(CHECK_PAIRS, convert_to_numpy=True), dtype=np.float64)
    switch(model, model_backend, precision)
    limit = tolerance(model_backend, precision)
    got = np.asarray(model.predict(CHECK_PAIRS, convert_to_numpy=True), dtype=np.float64)
    # scores, not vectors: the error is relative to the spread of the reference scores
    error = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-6))
    if not np.isfinite(error) or error > limit:
        raise EmbedkitError(f"cross-encoder on model backend {model_backend} ({precision}): scores differ from torch "
                            f"fp32 by a relative error of {error:.3g} (> {limit}); use model backend torch")
