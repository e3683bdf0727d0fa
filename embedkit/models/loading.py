"""Resolve a model argument (local folder or hub id) with errors that say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embedkit.data.corpus import looks_like_hub_id
from embedkit.errors import EmbedkitError

MODEL_FILES = ("config.json", "modules.json", "config_sentence_transformers.json")


def resolve_model(name: str) -> str:
    """Return a local folder or a hub id; refuse paths that do not hold a model, or whose config.json
    transformers could not load (checked here, before any loading)."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not any((path / f).is_file() for f in MODEL_FILES):
            raise EmbedkitError(f"{name} is not a model folder (no config.json or modules.json inside)")
        model_config(path)
        return str(path)
    if looks_like_hub_id(name):
        return name
    raise EmbedkitError(f"model not found: {name} (not a local folder, nor an owner/name hub id)")


def model_config(folder: str | Path) -> dict[str, Any]:
    """A local model folder's ``config.json`` (``{}`` when it has none), refused when transformers could not
    load it: not a JSON object, or without the ``model_type`` that names its architecture."""
    file = Path(folder).expanduser() / "config.json"
    if not file.is_file():
        return {}
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise EmbedkitError(f"{file}: not a readable JSON model config ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise EmbedkitError(f"{file}: no model_type, so transformers cannot tell which architecture to load; "
                            "is this a model folder saved by transformers or sentence-transformers?")
    return config


def check_length(name: str, length: int | None, where: str) -> None:
    """Refuse a token length beyond the positions a local model has (``max_position_embeddings``)."""
    if not length or not Path(name).expanduser().is_dir():
        return
    positions = model_config(name).get("max_position_embeddings")
    if isinstance(positions, int) and length > positions:
        raise EmbedkitError(f"{where}: {length} tokens is beyond the {positions} positions of {name}; "
                            f"use at most {positions}")


def is_sentence_transformers_folder(name: str) -> bool:
    return (Path(name) / "modules.json").is_file()


def hub_error(name: str, exc: Exception) -> EmbedkitError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return EmbedkitError(f"could not load model {name!r}: {first}. If it is a hub id, this machine may be offline: "
                         "download it where you have internet and pass the local folder.")


def remote_code_error(name: str, exc: Exception) -> EmbedkitError | None:
    """The clear message for a model that ships its own code while ``trust_remote_code`` is off."""
    if "trust_remote_code" not in str(exc):
        return None
    return EmbedkitError(f"{name} ships its own Python code, which embedkit does not run unless asked: inspect it, "
                         "then set model.trust_remote_code: true in the recipe if you trust it")
