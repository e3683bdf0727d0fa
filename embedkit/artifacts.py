"""Artefact folders: JSON manifests, atomic publication, model fingerprints, and the one hash of settings."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedkit.errors import EmbedkitError


def cache_dir() -> Path:
    """embedkit's cache folder (evaluation indexes, benchmark sets): ``$EMBEDKIT_CACHE`` or
    ``~/.cache/embedkit``. The only place it is resolved."""
    root = os.environ.get("EMBEDKIT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "embedkit"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("embedkit", "torch", "transformers", "sentence-transformers", "pylate", "faiss-cpu", "fast-plaid"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbedkitError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmbedkitError(f"{path}: not valid JSON ({exc})") from None


def partial_path(final: Path) -> Path:
    return final.with_name(final.name + ".partial")


@contextmanager
def publish_dir(final: str | Path, overwrite: bool = False, keep_partial: bool = True) -> Iterator[Path]:
    """Yield a work folder beside ``final``; rename it to ``final`` only when the block succeeds.

    The work folder (``<final>.partial``) survives a failure so that a rerun can resume from it.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise EmbedkitError(f"{final} already exists; pass --overwrite to replace it")
    work = partial_path(final)
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    except BaseException:
        if not keep_partial:
            shutil.rmtree(work, ignore_errors=True)
        raise
    if final.exists():
        trash = final.with_name(f".{final.name}.old-{int(time.time())}")
        os.replace(final, trash)
        os.replace(work, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(work, final)


def settings_key(settings: Any, length: int = 16) -> str:
    """The hash that says whether an artefact was made with ``settings`` (any JSON-able value: a dict, or a
    list of parts): equal settings, equal keys, whatever the order of a dict's keys. Results JSONs, the
    report stage's stamp and evaluation's cached indexes are named or checked by it, so the formula is fixed:
    a change would make every saved result look stale.

    >>> settings_key({"k": 10, "split": "test"}) == settings_key({"split": "test", "k": 10})
    True
    >>> settings_key(["report", "ndcg@10"], length=8)
    '05a6c193'
    """
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:length]


def model_fingerprint(path: str | Path) -> str:
    """A cheap identity for a model folder: names, sizes and the first/last MiB of every file."""
    path = Path(path)
    if not path.is_dir():
        return hashlib.sha256(str(path).encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.startswith(("checkpoints/", ".")) or rel in ("README.md", "embedkit.json", "metrics.json"):
            continue
        size = file.stat().st_size
        digest.update(f"{rel}:{size}".encode())
        with open(file, "rb") as f:
            digest.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), os.SEEK_END)
                digest.update(f.read())
    return digest.hexdigest()[:16]
