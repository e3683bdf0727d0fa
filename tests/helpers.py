"""Writers of small input files in the layouts embedkit reads (BEIR folders, JSONL corpora, hub dataset
repositories). Plain functions, imported as ``from tests.helpers import ...``; the ``make_beir`` and
``make_hub_repo`` fixtures hand the same functions to tests that prefer a fixture."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

WORDS = "parse read write open close sort merge split join map filter reduce stream buffer socket".split()


def write_beir(folder: Path, corpus: list[tuple[str, str]], queries: list[tuple[str, str]],
               qrels: list[tuple[str, str, int]], split: str = "test") -> Path:
    """Write a BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, text in corpus:
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in queries:
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, did, score in qrels:
            f.write(f"{qid}\t{did}\t{score}\n")
    return folder


def write_code_beir(folder: Path, pairs: list, num_queries: int | None = None) -> Path:
    """A BEIR folder of code pairs: every pair's code a document; the docstring summaries of the first
    ``num_queries`` pairs (all by default) the queries ``q0, q1, ...``, each judging its own code relevant."""
    judged = pairs[:num_queries]
    return write_beir(folder, [(p.id, p.code) for p in pairs], [(f"q{i}", p.query) for i, p in enumerate(judged)],
                      [(f"q{i}", p.id, 1) for i, p in enumerate(judged)])


def write_word_corpus(path: Path, num_docs: int, words_per_doc: int, seed: int = 0) -> Path:
    """A JSONL corpus of ``d0, d1, ...`` with random words from :data:`WORDS` (same seed, same file)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(num_docs):
            f.write(json.dumps({"_id": f"d{i}", "text": " ".join(rng.choice(WORDS) for _ in range(words_per_doc))})
                    + "\n")
    return path


def trainer_with_callback(trainer_class: type, callback: type) -> type:
    """``trainer_class`` with a ``callback`` (a ``TrainerCallback`` class) added to every instance."""

    class WithCallback(trainer_class):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.add_callback(callback)

    return WithCallback


def crash_at_save() -> type:
    """A ``TrainerCallback`` that kills the run (``KeyboardInterrupt``) right after its first checkpoint."""
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    return Crash


def count_steps(steps: list[int]) -> type:
    """A ``TrainerCallback`` that appends each finished step's number to ``steps``."""
    from transformers import TrainerCallback

    class Count(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)

    return Count


def write_hub_repo(root: Path, configs: dict[str, dict[str, dict[str, list]]]) -> Path:
    """A dataset repository as on the Hub: parquet per config/split, declared in README.md's YAML."""
    import datasets

    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, columns in splits.items():
            (root / config).mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(columns).to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join(lines + ["---", ""]), encoding="utf-8")
    return root


def import_pylate(module: str = "pylate") -> Any:
    """``module`` of PyLate, or a skip that says why: PyLate's stack is tested in its own environment."""
    import pytest

    return pytest.importorskip(module, reason="stack: PyLate is tested in its own environment (make test-pylate)")


class NoEncoding:
    """Wraps an encoder and refuses to encode documents: a rebuild from kept shards must not ask it to (queries
    are still encoded by the wrapped encoder)."""

    def __init__(self, encoder):
        self.inner = encoder
        self.dim, self.normalize, self.manifest = encoder.dim, encoder.normalize, encoder.manifest

    def encode_documents(self, texts):
        raise AssertionError(f"a rebuild from kept shards encoded {len(texts)} documents")

    def prepare_documents(self, texts):
        raise AssertionError(f"a rebuild from kept shards encoded {len(texts)} documents")

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)


def ndcg_at_10(index, data_dir: Path) -> float:
    """nDCG@10 of a searcher on a BEIR folder, through the eval runner's retrieve path."""
    from embedkit.data.beir import load_beir
    from embedkit.evaluate.metrics import evaluate_run
    from embedkit.evaluate.runner import retrieve

    data = load_beir(data_dir)
    return evaluate_run(data.qrels, retrieve(index, data.queries, 10), k=10)["ndcg@10"]


def rebuild_from_shards(source: Path, target: Path, data_dir: Path, settings, **kwargs):
    """A copy of the index in ``source`` rebuilt at ``target`` with ``settings`` from its kept shards (encoding a
    document fails the test); returns the opened index."""
    import shutil

    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index, open_index

    if not target.exists():
        shutil.copytree(source, target)
    original = open_index(source)
    encoder = NoEncoding(original.encoder)
    build_index(original.manifest.model, Corpus(str(data_dir)), target, settings, overwrite=True, progress=False,
                encoder=encoder, **kwargs)
    return open_index(target, encoder=encoder)
