"""Line-oriented readers that point at the file and line of bad data."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedkit.errors import EmbedkitError


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, decoded one line at a time so a bad byte names its own line
    (a text wrapper decodes 8 KiB chunks ahead and would blame an earlier line)."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as raw:
        for lineno, data in enumerate(raw, start=1):
            try:
                yield lineno, data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EmbedkitError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason} at byte {exc.start} "
                                    "of the line)") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; bad JSON or bytes name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise EmbedkitError(f"file not found: {path}")
    for lineno, line in _iter_lines(path):
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
    """Yield (line number, fields) of a tab-separated file, parsed as BEIR writes and reads it.

    BEIR's loader uses ``csv`` with ``QUOTE_MINIMAL``: a field that holds a quote is written as
    ``"a""b"`` and must be read back as ``a"b`` to match its document id. The line number is the
    file line on which the record ends.
    """
    path = Path(path)
    if not path.is_file():
        raise EmbedkitError(f"file not found: {path}")
    reader = csv.reader((line for _, line in _iter_lines(path)), delimiter="\t", quoting=csv.QUOTE_MINIMAL)
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as exc:
        raise EmbedkitError(f"{path}:{reader.line_num}: malformed TSV ({exc})") from None


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
