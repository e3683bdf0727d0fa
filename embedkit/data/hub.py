"""Hugging Face Hub datasets, with a clear error instead of a hang or traceback when unreachable; and the
questions put to the Hub before any work (is it offline, does this id exist)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Literal

from embedkit.errors import EmbedkitError

# Seconds a reachability question may take: an unreachable Hub should fail in seconds, not after the
# client's retries (~25 s).
HUB_PROBE_TIMEOUT_S = 5.0

RepoType = Literal["dataset", "model"]


def load_hub_dataset(dataset_id: str, subset: str | None, split: str, streaming: bool = False,
                     cache_dir: str | None = None) -> Any:
    """``datasets.load_dataset`` with offline-friendly failure: name the dataset and the local fallback."""
    import datasets

    try:
        return datasets.load_dataset(dataset_id, subset, split=split, streaming=streaming, cache_dir=cache_dir)
    except (FileNotFoundError, ConnectionError, OSError, ValueError) as exc:
        raise EmbedkitError(
            f"could not load dataset {dataset_id!r} (subset {subset!r}, split {split!r}) from the Hugging Face "
            f"Hub or its cache: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "Download it where you have internet and pass the local file or folder instead "
            "(a BEIR folder, JSONL or Parquet).") from None


def hub_offline() -> bool:
    """Whether the Hub client is in offline mode (``HF_HUB_OFFLINE``): it then reads its cache only."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def http_errors() -> tuple[type[Exception], ...]:
    """The transport errors of the hub client: httpx before huggingface_hub 2, httpx2 from it."""
    errors = []
    for name in ("httpx", "httpx2"):
        try:
            errors.append(importlib.import_module(name).HTTPError)
        except ImportError:
            continue
    return tuple(errors)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def in_hub_cache(repo_id: str, repo_type: RepoType) -> bool:
    """Whether the Hugging Face caches hold anything of ``repo_id`` (a download by the hub client, or for
    datasets also the ``datasets`` library's prepared copy): what offline mode can load."""
    from huggingface_hub import constants

    owner_name = repo_id.replace("/", "--")
    if (Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{owner_name}").is_dir():
        return True
    if repo_type == "dataset":
        datasets_cache = os.environ.get("HF_DATASETS_CACHE") or str(Path(constants.HF_HOME) / "datasets")
        return (Path(datasets_cache) / repo_id.replace("/", "___")).is_dir()
    return False


def hub_answer(repo_id: str, repo_type: RepoType) -> str | None:
    """None when ``repo_id`` can be loaded (it is on the Hub, or in the cache), else why not, as a phrase.

    Offline (``HF_HUB_OFFLINE``), only the cache is looked at; online, the Hub is asked with a short
    time-out through its own client, so proxies, ``HF_ENDPOINT`` and tokens count as they will for the
    download.
    """
    if hub_offline():
        if in_hub_cache(repo_id, repo_type):
            return None
        return "the Hub could not be asked (HF_HUB_OFFLINE is set) and the Hugging Face cache does not hold it"
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    api = HfApi(endpoint=constants.ENDPOINT)
    ask = api.dataset_info if repo_type == "dataset" else api.model_info
    try:
        ask(repo_id, timeout=HUB_PROBE_TIMEOUT_S)
    except GatedRepoError:
        return None  # it exists; the download says whether this user may read it
    except RepositoryNotFoundError:
        return f"the Hub has no {repo_type} of that name (or it is private and you are not logged in)"
    except (OSError, ValueError, *http_errors()) as exc:
        if in_hub_cache(repo_id, repo_type):
            return None
        return f"the Hub could not be asked ({constants.ENDPOINT}: {type(exc).__name__}: {first_line(exc)})"
    return None
