"""Artefact folders: JSON manifests, atomic publication, model fingerprints, the one hash of settings, and the one
answer to "is this output current?" (:class:`Currency`, acted on by the caller's :class:`Policy`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from embedkit.errors import EmbedkitError

logger = logging.getLogger("embedkit")


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


def check_replaceable(final: str | Path, manifest: str, what: str, announce: bool = False) -> None:
    """Refuse to replace ``final`` unless it is a folder holding embedkit's ``manifest`` (a folder of ``what``
    embedkit made): ``--overwrite`` never deletes a user's folder or file. ``announce`` logs what is replaced."""
    final = Path(final)
    if not (final.exists() or final.is_symlink()):
        return
    if final.is_symlink() or not final.is_dir():
        raise EmbedkitError(f"{final} is a file, not {what} folder embedkit made; --overwrite replaces only those: "
                            "choose another path (embedkit never deletes what it did not make)")
    if not (final / manifest).is_file():
        raise EmbedkitError(f"{final} holds no {manifest}: it is not {what} folder embedkit made, and --overwrite "
                            "replaces only those; choose another folder (embedkit never deletes what it did not "
                            "make)")
    if announce:
        logger.warning("--overwrite: replacing %s (%s folder embedkit made, %s)", final, what, manifest)


def check_apart(output: str | Path | None, where: str, inputs: Iterable[tuple[str, str | Path | None]]) -> None:
    """Refuse an output path that equals, contains or lies inside one of the ``(flag, path)`` inputs that exist
    locally: writing it could overwrite, delete or be read back as the input (``mine --output`` equal to
    ``--data``, an index folder inside its corpus folder)."""
    if not output:
        return
    out = Path(output).expanduser().resolve()
    for flag, value in inputs:
        if not value or not Path(value).expanduser().exists():
            continue
        source = Path(value).expanduser().resolve()
        if out == source:
            raise EmbedkitError(f"{where} {output} is the input {flag}; write to another path")
        if source.is_relative_to(out):
            raise EmbedkitError(f"{where} {output} contains the input {flag} {value}; write to another path")
        if source.is_dir() and out.is_relative_to(source):
            raise EmbedkitError(f"{where} {output} lies inside the input {flag} {value}; write outside it")


def check_writable(path: str | Path, where: str, expect: str = "file") -> Path:
    """An output path that can be written: not a folder where a file is expected (or the reverse), and its
    nearest existing parent a folder this process may write in. Checked before any work, so that the OS error
    is one line naming the path instead of a traceback after minutes of work."""
    path = Path(path).expanduser()
    if expect == "file" and path.is_dir():
        raise EmbedkitError(f"{where}: {path} is a folder; a file is expected here")
    if expect == "folder" and path.exists() and not path.is_dir():
        raise EmbedkitError(f"{where}: {path} is a file; a folder is expected here")
    for parent in path.absolute().parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise EmbedkitError(f"{where}: cannot write {path}: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise EmbedkitError(f"{where}: cannot write {path}: permission denied in {parent}")
        break
    return path


def check_results_file(path: str | Path | None, where: str) -> None:
    """A results JSON to write: writable, and if it exists, a results JSON embedkit wrote (one with a
    ``settings_key``), never a user's file."""
    if not path:
        return
    path = check_writable(path, where)
    if not path.exists():
        return
    try:
        ours = "settings_key" in json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, OSError):
        ours = False
    if not ours:
        raise EmbedkitError(f"{where}: {path} exists and is not a results file embedkit wrote; choose another "
                            "path (embedkit never overwrites what it did not make)")


@contextmanager
def publish_dir(final: str | Path, overwrite: bool = False, keep_partial: bool = True,
                manifest: str | None = None, what: str = "an artefact", announce: bool = True) -> Iterator[Path]:
    """Yield a work folder beside ``final``; rename it to ``final`` only when the block succeeds.

    The work folder (``<final>.partial``) survives a failure so that a rerun can resume from it. With
    ``overwrite``, an existing ``final`` is replaced only when it holds ``manifest`` (see
    :func:`check_replaceable`, which says on stderr what it replaces unless ``announce`` is off: an edit in
    place); without a ``manifest`` nothing existing is replaced.
    """
    final = Path(final)
    if final.exists() or final.is_symlink():
        if manifest is None:
            raise EmbedkitError(f"{final} already exists; choose another path")
        check_replaceable(final, manifest, what, announce=overwrite and announce)
        if not overwrite:
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
        if manifest is not None:
            check_replaceable(final, manifest, what)  # again: something may have taken its place meanwhile
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


# --------------------------------------------------------------------------- is this output current?

class Policy(Enum):
    """What a caller does with an output that exists but was made otherwise than it would make it now. An absent
    output is made and a current one kept (unless the caller overwrites), whatever the policy."""

    SKIP = "skip"        # keep it and go on without making it (a warning names the differences)
    REFUSE = "refuse"    # stop before any work: an error names the differences and what the user can do
    REBUILD = "rebuild"  # make it again (a log line names the differences)


@dataclass(frozen=True)
class Currency:
    """Whether an output (a model, an index, a results file) is absent, current, or made otherwise: the one
    answer every stage and command acts on. Each kind of artefact has one function that computes it
    (:func:`embedkit.train.current.model_currency`, :func:`embedkit.index.current.index_currency`,
    :func:`embedkit.evaluate.settings.results_currency`); the caller passes its policy to :meth:`must_make`.

    ``differences`` is None when the output is absent, empty when it is current, else one
    ``key: recorded -> wanted`` line per difference (:func:`recorded_differences`). ``where`` names the output
    in messages, ``found`` says what is found there when it differs, ``remedy`` what the user can do about it.

    >>> Currency("index/", ("max_length: 64 -> 128",), "holds another index", "pass --overwrite").refusal()
    EmbedkitError('index/ holds another index (max_length: 64 -> 128); pass --overwrite')
    """

    where: str
    differences: tuple[str, ...] | None
    found: str = "holds an output made with other settings"
    remedy: str = "pass --overwrite to replace it"

    @property
    def absent(self) -> bool:
        return self.differences is None

    @property
    def current(self) -> bool:
        return self.differences == ()

    def shown(self, limit: int = 6) -> str:
        """The differences, the first ``limit`` of them and how many more."""
        changes = list(self.differences or ())
        more = f"; and {len(changes) - limit} more" if len(changes) > limit else ""
        return "; ".join(changes[:limit]) + more

    def refusal(self) -> EmbedkitError:
        return EmbedkitError(f"{self.where} {self.found} ({self.shown()}); {self.remedy}")

    def must_make(self, policy: Policy, overwrite: bool = False, then: str = "") -> bool:
        """Whether the caller makes the output (again): yes when it is absent or ``overwrite`` is set, no when it
        is current; when it differs, ``policy`` decides: REFUSE raises :meth:`refusal`, REBUILD logs the
        differences and says yes, SKIP warns and says no. ``then`` ends the log line (what happens next)."""
        if self.absent or overwrite:
            return True
        if self.current:
            return False
        if policy is Policy.REFUSE:
            raise self.refusal()
        told = f"{self.where} {self.found} ({self.shown()})" + (f"; {then}" if then else "")
        if policy is Policy.REBUILD:
            logger.info(told)
            return True
        logger.warning(told)
        return False


def recorded_differences(recorded: dict[str, Any], wanted: dict[str, Any],
                         defaults: dict[str, Any] | None = None) -> tuple[str, ...]:
    """``key: recorded -> wanted`` for every setting a manifest recorded otherwise than wanted now (nested keys
    dotted); ``defaults`` fill both sides first, for settings recorded only where they differ from them.

    >>> recorded_differences({"k": 10, "faiss": {"nprobe": 8}}, {"k": 10, "faiss": {"nprobe": 16}})
    ('faiss.nprobe: 8 -> 16',)
    """
    from embedkit.config import setting_differences

    base = defaults or {}
    return tuple(setting_differences({**base, **recorded}, {**base, **wanted}))
