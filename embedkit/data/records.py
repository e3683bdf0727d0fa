"""Line-oriented readers that point at the file and line of bad data."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from embedkit.errors import EmbedkitError


def _open_text(path: Path) -> IO[str]:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; bad JSON or bytes name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise EmbedkitError(f"file not found: {path}")
    with _open_text(path) as handle:
        lineno = 0
        while True:
            lineno += 1
            try:
                line = handle.readline()
            except UnicodeDecodeError as exc:
                raise EmbedkitError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not line:
                return
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EmbedkitError(f"{path}:{lineno}: malformed JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise EmbedkitError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def iter_tsv(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) of a tab-separated file."""
    path = Path(path)
    if not path.is_file():
        raise EmbedkitError(f"file not found: {path}")
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise EmbedkitError(f"{path}:{reader.line_num + 1}: not valid UTF-8 ({exc.reason})") from None


def require_fields(obj: dict[str, Any], where: str, options: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """Pick each wanted field from the first of its accepted names; name the missing ones otherwise."""
    picked: dict[str, Any] = {}
    for wanted, names in options.items():
        for name in names:
            if name in obj:
                picked[wanted] = obj[name]
                break
        else:
            expected = " or ".join(repr(n) for n in names)
            raise EmbedkitError(f"{where}: missing field {expected}; found fields: {', '.join(map(str, obj)) or 'none'}")
    return picked
