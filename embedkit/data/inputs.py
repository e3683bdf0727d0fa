"""Input paths checked before any work: a local path that does not exist is named as such, first.

Many inputs are either a local path or a Hugging Face Hub id (``owner/name``), and ``data/corpus`` is both
shapes at once. A misspelled local path must not be reported as a failed Hub download minutes later, after
a model was loaded: it is checked here, in well under a second, and the message says that no such local
path exists, then, when the string could also be a Hub id, why the Hub could not supply it either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from embedkit.data.corpus import looks_like_hub_id
from embedkit.data.hub import hub_answer
from embedkit.errors import EmbedkitError

Expect = Literal["file", "folder", "any"]


def check_local(value: str, where: str, expect: Expect = "any") -> Path:
    """A path that must exist on this machine (a BEIR folder, an index folder, a results file)."""
    path = Path(value).expanduser()
    if not path.exists():
        raise EmbedkitError(f"{where}: no such local path: {value}")
    if expect == "folder" and not path.is_dir():
        raise EmbedkitError(f"{where}: {value} is a file; a folder is expected here")
    if expect == "file" and not path.is_file():
        raise EmbedkitError(f"{where}: {value} is a folder; a file is expected here")
    return path


def check_local_or_hub(value: str, where: str, repo_type: Literal["dataset", "model"]) -> None:
    """A local path, or else a Hub id that the Hub (or its cache) can supply.

    ``where`` names the input (``--corpus``, ``index.corpus``) for the message.
    """
    if not value or not value.strip():
        raise EmbedkitError(f"{where}: empty path")
    if Path(value).expanduser().exists():
        return
    if not looks_like_hub_id(value):
        raise EmbedkitError(f"{where}: no such local path: {value}")
    reason = hub_answer(value, repo_type)
    if reason is not None:
        raise EmbedkitError(f"{where}: no such local path: {value}; read as a Hugging Face {repo_type} id, "
                            f"{reason}")
