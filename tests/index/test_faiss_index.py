"""FAISS indexes against the exact reference: IVF-PQ trained on a sample and filled shard by shard,
and IVF indexes searched memory-mapped from disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from embedkit.index.base import IndexManifest
from embedkit.index.encode import Shard, _write_shard
from embedkit.index.faiss_index import FaissIndex, FaissOptions, build_faiss

DIM, NUM, SHARD = 32, 3000, 700  # five shards, the last one short


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray, noise: float = 0.4) -> np.ndarray:
    x = centers[rng.integers(0, len(centers), n)] + noise * rng.normal(size=(n, centers.shape[1]))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # (n, dim), unit length


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # tiny problems: threads only add contention on a shared 2-core machine
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(30, DIM))
    vectors, queries = clustered(rng, NUM, centers), clustered(rng, 200, centers)
    folder = tmp_path_factory.mktemp("shards")
    shards = []
    for number, start in enumerate(range(0, NUM, SHARD)):
        chunk = vectors[start:start + SHARD]
        shard = Shard(number, len(chunk), folder)
        _write_shard(shard, [f"d{i}" for i in range(start, start + len(chunk))], ["text"] * len(chunk), chunk)
        shards.append(shard)
    yield shards, vectors, queries
    faiss.omp_set_num_threads(threads)


def build(folder: Path, shards: list[Shard], options: FaissOptions) -> Path:
    folder.mkdir()
    settings = build_faiss(shards, DIM, options, folder)
    IndexManifest(kind="dense", backend=options.index_type, model="m", model_fingerprint="0", embedding_dim=DIM,
                  normalized=True, num_documents=NUM, corpus="c", settings=settings).save(folder)
    return folder


def recall_at_10(positions: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(p) & set(e)) / 10 for p, e in zip(positions, exact)]))


@pytest.fixture(scope="module")
def exact(data, tmp_path_factory):
    shards, vectors, queries = data
    index = FaissIndex(build(tmp_path_factory.mktemp("flat") / "index", shards, FaissOptions()))
    scores, positions = index.search_encoded(queries, 10)
    reference = queries @ vectors.T  # (num_queries, num_documents): brute force
    np.testing.assert_array_equal(positions, np.argsort(-reference, axis=1, kind="stable")[:, :10])
    np.testing.assert_allclose(scores, np.sort(reference, axis=1)[:, ::-1][:, :10], rtol=1e-5, atol=1e-5)
    return positions


@pytest.fixture(scope="module")
def ivfpq(data, tmp_path_factory) -> Path:
    shards, _, _ = data
    # trained on a 2,000-vector sample, then filled with all 3,000 shard by shard
    return build(tmp_path_factory.mktemp("ivfpq") / "index", shards,
                 FaissOptions(index_type="ivfpq", pq_m=16, nprobe=16, train_sample=2000))


def test_ivfpq_recall_against_exact(data, exact, ivfpq):
    _, _, queries = data
    index = FaissIndex(ivfpq)
    assert index.faiss.ntotal == NUM
    assert index.manifest.settings["factory"] == "IVF51,PQ16"  # nlist = min(4·sqrt(N), sample/39)
    _, positions = index.search_encoded(queries, 10)
    recall = recall_at_10(positions, exact)
    assert recall > 0.7, recall  # 16 bytes per 32-dim vector; measured 0.8 here
    assert np.mean((positions == exact[:, :1]).any(axis=1)) > 0.9  # the true best is almost always in the 10


def test_ivfpq_default_sub_quantisers(data, exact, tmp_path):
    shards, _, queries = data
    index = FaissIndex(build(tmp_path / "index", shards, FaissOptions(index_type="ivfpq", train_sample=2000)))
    assert index.manifest.settings["factory"].endswith(",PQ8")  # dim / 4
    _, positions = index.search_encoded(queries, 10)
    assert recall_at_10(positions, exact) > 0.4  # 8 bytes per vector: coarse, but far above chance (0.003)


def test_ivf_index_searched_memory_mapped(data, ivfpq):
    import faiss

    _, _, queries = data
    in_memory, mapped = FaissIndex(ivfpq), FaissIndex(ivfpq, mmap=True)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(mapped.faiss).invlists)
    assert type(lists).__name__ == "OnDiskInvertedLists"  # the lists stay in the file, paged in on demand
    assert mapped.faiss.nprobe == 16
    s1, p1 = in_memory.search_encoded(queries, 10)
    s2, p2 = mapped.search_encoded(queries, 10)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(s1, s2)


def test_flat_index_with_mmap_falls_back_to_loading(data, exact, tmp_path):
    shards, _, queries = data
    index = FaissIndex(build(tmp_path / "index", shards, FaissOptions()), mmap=True)
    _, positions = index.search_encoded(queries, 10)
    np.testing.assert_array_equal(positions, exact)


def test_hnsw_recall_against_exact(data, exact, tmp_path):
    shards, _, queries = data
    index = FaissIndex(build(tmp_path / "index", shards, FaissOptions(index_type="hnsw", hnsw_m=16)))
    _, positions = index.search_encoded(queries, 10)
    assert recall_at_10(positions, exact) > 0.95


def test_pq_m_must_divide_the_dimension():
    with pytest.raises(EmbedkitError, match="must divide the embedding size 32"):
        FaissOptions(index_type="ivfpq", pq_m=5).factory(32, 10_000)


def test_default_nlist_is_capped_by_the_training_sample():
    # 100M vectors: 4·sqrt(N) = 40,000 lists would leave k-means 5 points a list from a 200k sample
    assert FaissOptions(index_type="ivfpq").factory(768, 100_000_000) == "IVF5128,PQ192"
    assert FaissOptions(index_type="ivfpq", train_sample=2_000_000).factory(768, 100_000_000) == "IVF40000,PQ192"
    assert FaissOptions(index_type="ivfpq").factory(768, 1_000_000) == "IVF4000,PQ192"


def test_search_opens_ivf_indexes_memory_mapped(ivfpq):
    import faiss

    from embedkit.index.registry import get_backend

    index = get_backend("ivfpq").open(ivfpq, encoder=None)  # what `embedkit search` / `eval` use
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index.faiss).invlists)
    assert type(lists).__name__ == "OnDiskInvertedLists"
