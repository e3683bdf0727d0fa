"""Quantized dense indexes (int8, binary, Matryoshka shortlist) with full-precision rescoring, against exact
flat search: synthetic vectors for recall, the packaged MiniLM on real code for nDCG@10, and bad settings refused
before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedkit.config import IndexSettings
from embedkit.errors import EmbedkitError
from embedkit.index.base import IndexManifest
from embedkit.index.encode import Shard, _write_shard
from embedkit.index.faiss_index import FLAT, HNSW
from embedkit.index.quantized import VECTORS, QuantizedIndex
from tests.helpers import ndcg_at_10, rebuild_from_shards

DIM, NUM, SHARD = 64, 3000, 1000


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(30, DIM))

    def draw(n: int) -> np.ndarray:
        x = centers[rng.integers(0, 30, n)] + 0.6 * rng.normal(size=(n, DIM))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # (n, DIM), unit length

    vectors, queries = draw(NUM), draw(100)
    folder = tmp_path_factory.mktemp("shards")
    shards = []
    for number, start in enumerate(range(0, NUM, SHARD)):
        shard = Shard(number, SHARD, folder)
        _write_shard(shard, [f"d{i}" for i in range(start, start + SHARD)], ["t"] * SHARD, vectors[start:start + SHARD])
        shards.append(shard)
    exact = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :10]  # (100, 10): brute force
    yield shards, vectors, queries, exact
    faiss.omp_set_num_threads(threads)


def build(folder: Path, shards: list[Shard], backend=FLAT, **settings) -> QuantizedIndex:
    folder.mkdir()
    recorded = backend.build(shards, folder, IndexSettings(backend=backend.name, **settings), DIM)
    IndexManifest(kind="dense", backend=backend.name, model="m", model_fingerprint="0", embedding_dim=DIM,
                  normalized=True, num_documents=NUM, corpus="c", settings=recorded).save(folder)
    index = backend.open(folder, None)
    assert isinstance(index, QuantizedIndex)
    return index


def recall(positions: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(p[:10]) & set(e)) / 10 for p, e in zip(positions, exact)]))


@pytest.mark.parametrize("backend", [FLAT, HNSW], ids=["flat", "hnsw"])
def test_rescoring_recovers_exact_neighbours(tmp_path, synthetic, backend):
    shards, _, queries, exact = synthetic
    int8 = build(tmp_path / "int8", shards, backend, quantization="int8")
    binary = build(tmp_path / "binary", shards, backend, quantization="binary", rescore_multiplier=10)
    assert recall(int8.search_encoded(queries, 10)[1], exact) >= 0.99
    rescored = recall(binary.search_encoded(queries, 10)[1], exact)
    binary.rescore = False
    first_pass = recall(binary.search_encoded(queries, 10)[1], exact)
    assert rescored >= 0.95 and rescored > first_pass + 0.1, (rescored, first_pass)


def test_rescored_scores_are_exact_inner_products(tmp_path, synthetic):
    shards, vectors, queries, _ = synthetic
    index = build(tmp_path / "i", shards, quantization="binary")
    scores, positions = index.search_encoded(queries, 5)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, vectors[positions]), rtol=1e-5, atol=1e-6)
    assert (np.diff(scores, axis=1) <= 1e-7).all()  # best first


def test_int8_ranges_are_sentence_transformers_calibration_ranges(tmp_path, synthetic):
    from sentence_transformers.util.quantization import quantize_embeddings

    shards, vectors, _, _ = synthetic
    index = build(tmp_path / "i", shards, quantization="int8")  # the sample (train_sample) holds all 3,000
    ranges = np.array(index.manifest.settings["int8_ranges"], dtype=np.float32)  # (2, DIM)
    np.testing.assert_array_equal(quantize_embeddings(vectors[:50], "int8", ranges=ranges),
                                  quantize_embeddings(vectors[:50], "int8", calibration_embeddings=vectors))


def test_binary_first_pass_is_a_32nd_and_full_vectors_stay_on_disk(tmp_path, synthetic):
    shards, _, queries, _ = synthetic
    index = build(tmp_path / "i", shards, quantization="binary")
    first_pass = (tmp_path / "i" / "index.faiss").stat().st_size
    full = NUM * DIM * 4
    assert first_pass <= full / 16 + 4096  # NUM * DIM / 8 bytes of codes and a header
    assert isinstance(index.vectors, np.memmap) and index.vectors.shape == (NUM, DIM)
    assert index.first_pass.ntotal == NUM and index.first_pass.code_size == DIM // 8


def test_matryoshka_shortlist_then_full_rescore(tmp_path, synthetic):
    shards, _, queries, exact = synthetic
    index = build(tmp_path / "i", shards, shortlist_dim=32, rescore_multiplier=8)
    assert index.first_pass.d == 32 and index.manifest.settings["shortlist_dim"] == 32
    assert recall(index.search_encoded(queries, 10)[1], exact) >= 0.95


def test_add_and_delete_match_a_fresh_build(tmp_path, synthetic):
    from embedkit.index.base import DocumentStore

    shards, vectors, queries, _ = synthetic
    index = build(tmp_path / "i", shards[:2], quantization="int8")
    folder = index.folder
    DocumentStore.write(folder, ((f"d{i}", "t") for i in range(2 * SHARD)))
    manifest = IndexManifest.load(folder)
    FLAT.append(folder, manifest, vectors[2 * SHARD:], DocumentStore(folder))
    FLAT.remove(folder, manifest, np.arange(0, 100), DocumentStore(folder))
    edited = FLAT.open(folder, None)
    assert edited.first_pass.ntotal == NUM - 100 and edited.vectors.shape == (NUM - 100, DIM)
    scores, positions = edited.search_encoded(queries, 10)
    reference = np.argsort(-(queries @ vectors[100:].T), axis=1, kind="stable")[:, :10]
    assert recall(positions, reference) >= 0.99


# ---- the packaged MiniLM on real code (held out: MiniLM never saw these queries) ----

@pytest.mark.slow  # the MiniLM index of 600 documents (a session fixture, shared with the qdrant tests)
def test_minilm_quantized_keeps_flat_quality_and_rebuilds_without_encoding(tmp_path, minilm_code_index, code_beir):
    from embedkit.index.build import open_index

    reference = ndcg_at_10(open_index(minilm_code_index), code_beir)
    assert reference > 0.5
    scores = {}
    for quantization in ("int8", "binary"):
        settings = IndexSettings(quantization=quantization)
        index = rebuild_from_shards(minilm_code_index, tmp_path / "index", code_beir, settings)
        assert index.description()["quantization"] == quantization
        scores[quantization] = ndcg_at_10(index, code_beir)
    assert scores["int8"] >= 0.998 * reference, (scores, reference)
    assert scores["binary"] >= 0.99 * reference, (scores, reference)


@pytest.mark.parametrize("settings, kind, message", [
    (dict(backend="exact", quantization="binary"), "colbert", "applies to dense models"),
    (dict(quantization="int8"), "colbert", "applies to dense models"),
    (dict(backend="ivfpq", quantization="int8"), "dense", "not ivfpq"),
    (dict(rescore_multiplier=0), "dense", "must be at least 1"),
])
def test_bad_quantization_settings_are_refused_before_loading_a_model(tmp_path, settings, kind, message):
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "text": "x"}\n')
    with pytest.raises(EmbedkitError, match=message):
        build_index(str(tmp_path / "no-such-model"), Corpus(str(corpus)), tmp_path / "i", IndexSettings(**settings),
                    kind=kind, progress=False)
    assert not (tmp_path / "i").exists() and not (tmp_path / "i.partial").exists()


def test_bm25_quantization_and_wide_shortlist_are_cli_errors(tmp_path, minilm_path, capsys):
    from embedkit.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "text": "x"}\n')
    assert main(["index", "--backend", "bm25", "--quantization", "binary", "--corpus", str(corpus),
                 "--index-dir", str(tmp_path / "i")]) == 2
    assert "applies to dense models" in capsys.readouterr().err
    assert main(["index", "--model", minilm_path, "--shortlist-dim", "1000", "--corpus", str(corpus),
                 "--index-dir", str(tmp_path / "j")]) == 2
    assert "larger than the model's embedding size 384" in capsys.readouterr().err
    assert not any(tmp_path.glob("[ij]*"))


def test_vectors_file_is_named_in_the_manifest(tmp_path, synthetic):
    shards, _, _, _ = synthetic
    index = build(tmp_path / "i", shards, quantization="binary")
    assert index.manifest.settings["rescore_vectors"] == VECTORS


def test_quantization_names_are_the_registry_names():
    import typing

    from embedkit.config import Quantization
    from embedkit.index.registry import QUANTIZATIONS

    assert set(typing.get_args(Quantization)) == set(QUANTIZATIONS)


def test_an_index_recorded_before_these_settings_is_still_current(tmp_path, tiny_indexes, tiny_modernbert):
    """Manifests written before index.quantization / index.qdrant existed read as their defaults."""
    import shutil

    from embedkit.data.corpus import Corpus
    from embedkit.index.current import index_currency

    dense_dir, _ = tiny_indexes
    copy = tmp_path / "dense"
    shutil.copytree(dense_dir, copy)
    manifest = IndexManifest.load(copy)
    for key in ("quantization", "rescore_multiplier", "shortlist_dim", "qdrant"):
        manifest.settings["index_settings"].pop(key, None)
    manifest.save(copy)
    corpus = Corpus(manifest.corpus)
    same = IndexSettings(backend="flat", batch_size=16, max_length=64)
    assert index_currency(copy, str(tiny_modernbert), corpus, same).differences == ()
    binary = IndexSettings(backend="flat", max_length=64, quantization="binary")
    assert index_currency(copy, str(tiny_modernbert), corpus, binary).differences == ("quantization: none -> binary",)
    manifest.settings["index_settings"]["quantization"] = "binary"  # and back: none is a change from binary
    manifest.save(copy)
    assert index_currency(copy, str(tiny_modernbert), corpus, same).differences == ("quantization: binary -> none",)
