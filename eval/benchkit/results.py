"""Results JSON under eval/results/: written whole (a temporary file renamed), its folder made first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"


def save(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON to ``path``; a reader (or a run cut short) never sees half a file."""
    from embedkit.artifacts import write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, obj)
    return path
