"""Which folders (or hub repositories) hold a ColBERT checkpoint, read from their config files.

Both libraries load each other's checkpoints where they can, so this answers "ColBERT or not", not "whose":
a PyLate save (``modules.json`` naming ``pylate``, ``model_type: ColBERT``), a sentence-transformers
``MultiVectorEncoder`` save (``model_type: MultiVectorEncoder``), or a Stanford-NLP ColBERT (``HF_ColBERT``).
Anything else (a raw backbone, a dense sentence-transformers model) becomes a ColBERT with a fresh projection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLBERT_MODEL_TYPES = ("ColBERT", "MultiVectorEncoder")  # config_sentence_transformers.json model_type
COLBERT_MODULE_MARKERS = ("pylate", "multi_vector_encoder")  # in modules.json class paths
STANFORD_ARCHITECTURE = "HF_ColBERT"


def model_json(name: str, filename: str, local_only: bool = False) -> Any:
    """``filename`` of a local model folder or hub repository as parsed JSON; None when absent or unreadable
    (hub files come through the Hugging Face cache, so offline only what was downloaded before)."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        path = folder / filename
    elif local_only:
        return None
    else:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name, filename))
        except Exception:  # not on the hub, offline and not cached, no such file: not a ColBERT marker either way
            return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_colbert_checkpoint(name: str, local_only: bool = False) -> bool:
    """Whether ``name`` holds a ColBERT model (any library's format) rather than a backbone to wrap."""
    st_config = model_json(name, "config_sentence_transformers.json", local_only) or {}
    if isinstance(st_config, dict) and st_config.get("model_type") in COLBERT_MODEL_TYPES:
        return True
    modules = model_json(name, "modules.json", local_only) or []
    types = [str(m.get("type", "")) for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []
    if any(marker in t for t in types for marker in COLBERT_MODULE_MARKERS):
        return True
    config = model_json(name, "config.json", local_only) or {}
    return isinstance(config, dict) and STANFORD_ARCHITECTURE in (config.get("architectures") or [])


def transformer_folder(name: str) -> str:
    """Where the backbone's weights are: ``name`` itself, or the Transformer module's folder of a
    sentence-transformers model saved with one (``0_Transformer/``, older saves)."""
    modules = model_json(name, "modules.json", local_only=True)
    if isinstance(modules, list):
        for module in modules:
            if isinstance(module, dict) and str(module.get("type", "")).endswith("Transformer") and module.get("path"):
                return str(Path(name).expanduser() / module["path"])
    return name
