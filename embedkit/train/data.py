"""Training rows from local files or hub datasets, renamed to (query, positive, negative_1, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedkit.config import ColumnsConfig, DataConfig, SourceConfig
from embedkit.data.corpus import looks_like_hub_id
from embedkit.data.records import iter_jsonl
from embedkit.errors import EmbedkitError

DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def _local_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise EmbedkitError(f"{path}: unsupported training data file {path.suffix or '(no suffix)'}; use "
                                f"{', '.join(DATA_SUFFIXES)} (rows of query, positive[, negative_1...])")
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix in DATA_SUFFIXES)
    if not files:
        raise EmbedkitError(f"{path}: no {', '.join(DATA_SUFFIXES)} files in this folder")
    return files


def _read_local(path: Path):
    import datasets

    files = _local_files(path)
    if all(f.suffix in (".jsonl", ".json") for f in files):
        rows = [obj for f in files for _, obj in iter_jsonl(f)]  # validates line by line
        if not rows:
            raise EmbedkitError(f"{path}: no training rows")
        return datasets.Dataset.from_list(rows)
    builder = {".parquet": "parquet", ".csv": "csv"}[files[0].suffix]
    try:
        return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    except Exception as exc:
        raise EmbedkitError(f"{path}: could not read {builder} data ({exc})") from None


def check_source(source: str, where: str) -> None:
    """A local training file's format, checked when the recipe is (before any model loads): a readable suffix.
    Folders (whose layout depends on data.format) and hub ids are checked when read."""
    path = Path(source).expanduser()
    if path.is_file():
        try:
            _local_files(path)
        except EmbedkitError as exc:
            raise EmbedkitError(f"{where}: {exc}") from None


def read_source(source: str, subset: str | None, split: str):
    """A ``datasets.Dataset`` from a local file/folder (all of it: ``split`` names a hub dataset's split) or a
    hub id."""
    path = Path(source).expanduser()
    if path.exists():
        return _read_local(path)
    if looks_like_hub_id(source):
        from embedkit.data.hub import load_hub_dataset

        return load_hub_dataset(source, subset, split)
    raise EmbedkitError(f"training data not found: {source} (not a local file or folder, nor a hub dataset id)")


def select_columns(dataset, columns: ColumnsConfig, where: str):
    """Keep and order the columns the losses read: query, positive, negative_1..n."""
    names = list(dataset.column_names)
    negatives = columns.negatives
    if negatives is None:
        negatives = [c for c in names if c.lower().startswith("negative")]
    wanted = [columns.query, columns.positive, *negatives]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise EmbedkitError(f"{where}: missing column(s) {', '.join(map(repr, missing))}; expected "
                            f"{', '.join(map(repr, wanted))} (set data.columns); found {', '.join(names)}")
    dataset = dataset.select_columns(wanted)
    targets = ["query", "positive", *(f"negative_{i + 1}" for i in range(len(negatives)))]
    mapping = {old: new for old, new in zip(wanted, targets) if old != new}
    # Rename through temporary names so swaps (e.g. a column already named negative_1) cannot collide.
    dataset = dataset.rename_columns({old: f"__tmp_{new}" for old, new in mapping.items()})
    dataset = dataset.rename_columns({f"__tmp_{new}": new for new in mapping.values()})
    for name in targets:
        empty = dataset.filter(lambda row, n=name: not isinstance(row[n], str) or not row[n].strip())
        if len(empty):
            raise EmbedkitError(f"{where}: {len(empty)} rows have an empty or non-text {name!r} value")
    return dataset


def load_source(src: SourceConfig) -> Any:
    if not src.train:
        raise EmbedkitError("data.train: no training data given")
    where = src.train if not src.subset else f"{src.train} ({src.subset})"
    dataset = read_source(src.train, src.subset, src.split)
    if src.max_samples is not None:
        dataset = dataset.select(range(min(src.max_samples, len(dataset))))
    return select_columns(dataset, src.columns, where)


def load_training_data(cfg: DataConfig) -> Any:
    """One Dataset, or a DatasetDict when ``data.mix`` adds sources (sampled per ``data.sampling``)."""
    main = load_source(cfg)
    if not cfg.mix:
        return main
    import datasets

    parts = {"main": main}
    for i, src in enumerate(cfg.mix, start=1):
        parts[f"mix{i}"] = load_source(src)
    return datasets.DatasetDict(parts)
