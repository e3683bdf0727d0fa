"""Hugging Face Hub datasets, with a clear error instead of a hang or traceback when unreachable."""

from __future__ import annotations

from typing import Any

from embedkit.errors import EmbedkitError


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
