"""Multi-vector (ColBERT) models: a registry of libraries (sentence-transformers' ``MultiVectorEncoder``, PyLate),
models built or loaded through the chosen one, the encoder indexes use, and the export to PyLate's format.

Names are imported on first use (PEP 562), so that recipe validation can read ``registry`` without loading
the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ColbertEncoder": "encoder", "build_colbert_model": "encoder", "load_colbert_model": "encoder",
    "AUTO": "registry", "LIBRARIES": "registry", "ColbertLibrary": "registry", "get_library": "registry",
    "library_of": "registry",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
