"""Sparse (SPLADE) indexes: exact scoring against a brute-force dense reference, Seismic's recall against exact,
add/delete, kept shards, --explain, and a sparse model refused by a dense backend."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from embedkit.config import IndexSettings
from embedkit.data.corpus import Corpus
from embedkit.errors import EmbedkitError
from embedkit.index.build import add_documents, build_index, delete_documents, open_index
from embedkit.index.sparse_index import top_k
from tests.helpers import write_beir


@pytest.fixture(scope="module")
def sparse_corpus(tmp_path_factory, code_pairs):
    docs = [(p.id, p.code[:400]) for p in code_pairs[:120]]
    queries = [(f"q{i}", p.query) for i, p in enumerate(code_pairs[:30])]
    qrels = [(f"q{i}", p.id, 1) for i, p in enumerate(code_pairs[:30])]
    return write_beir(tmp_path_factory.mktemp("sparse-beir"), docs, queries, qrels), docs, queries


@pytest.fixture(scope="module")
def exact_index(tmp_path_factory, sparse_minilm, sparse_corpus):
    folder = tmp_path_factory.mktemp("sparse-exact") / "index"
    build_index(str(sparse_minilm), Corpus(str(sparse_corpus[0])), folder, IndexSettings(batch_size=16, shard_size=50),
                progress=False)
    return folder


def test_exact_index_equals_dense_dot_products(exact_index, sparse_corpus):
    index = open_index(exact_index)
    assert (index.manifest.kind, index.manifest.backend) == ("sparse", "sparse-exact")
    texts = [q for _, q in sparse_corpus[2][:8]]
    q = index.encoder.encode_queries(texts)
    d = index.encoder.encode_documents([t for _, t in sparse_corpus[1]])
    dense = q.toarray() @ d.toarray().T  # (8, 120): the reference
    scores, positions = index.search_encoded(q, 10)
    ref_s, ref_p = top_k(dense.astype(np.float32), 10)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-4, atol=1e-4)
    assert (positions[:, :3] == ref_p[:, :3]).mean() > 0.95  # ties aside, the same ranking
    stats = index.statistics()
    assert stats["mean_query_terms"] > 0 and stats["mean_document_terms"] > 0 and stats["index_bytes"] > 0


@pytest.mark.slow  # Seismic's build has a fixed cost per vocabulary term (~40 s on a loaded 2-core machine)
def test_seismic_recall_against_exact(tmp_path, exact_index, sparse_corpus, sparse_minilm):
    seismic = tmp_path / "seismic"
    build_index(str(sparse_minilm), Corpus(str(sparse_corpus[0])), seismic,
                IndexSettings(backend="seismic", batch_size=16, shard_size=50), progress=False)
    exact, approx = open_index(exact_index), open_index(seismic)
    assert approx.manifest.backend == "seismic"
    q = exact.encoder.encode_queries([t for _, t in sparse_corpus[2]])
    _, want = exact.search_encoded(q, 10)
    _, got = approx.search_encoded(q, 10)
    recall = np.mean([len(set(w[w >= 0]) & set(g[g >= 0])) / max(1, (w >= 0).sum()) for w, g in zip(want, got)])
    assert recall >= 0.9, recall


def test_seismic_on_synthetic_vectors_matches_exact(tmp_path):
    """Seismic against brute force on random sparse vectors (no model): recall@10 at its default settings."""
    from embedkit.config import SeismicConfig
    from embedkit.index.sparse_index import build_seismic

    rng = np.random.default_rng(0)
    docs = sp.random(3000, 2000, density=0.02, format="csr", random_state=rng, dtype=np.float32)
    queries = sp.random(50, 2000, density=0.005, format="csr", random_state=rng, dtype=np.float32)
    build_seismic(docs, tmp_path, SeismicConfig())
    import seismic

    index = seismic.SeismicIndex.load(str(tmp_path / "seismic.index.seismic"))
    string = seismic.get_seismic_string()
    rows = [i for i in range(50) if queries[i].nnz]
    found = [index.search(str(i), queries[i].indices.astype(str).astype(string), queries[i].data, k=10,
                          query_cut=20, heap_factor=0.7) for i in rows]
    _, exact = top_k((queries @ docs.T).toarray().astype(np.float32), 10)
    recall = np.mean([len({int(d) for _, _, d in hits} & set(exact[i][exact[i] >= 0])) / max(1, (exact[i] >= 0).sum())
                      for i, hits in zip(rows, found)])
    assert recall >= 0.9, recall


def test_add_delete_and_explain(tmp_path, exact_index, sparse_corpus):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(exact_index, folder)
    new = [("new-doc", "def parse_url(url): split a URL into scheme, host and path")]
    assert add_documents(folder, new) == 121
    index = open_index(folder)
    hits = index.search(["parse url scheme host path"], k=3)[0]
    assert hits[0].id == "new-doc"
    terms = index.explain("parse url scheme host path", [120])[0]
    assert terms and all(score > 0 for _, score in terms)
    assert delete_documents(folder, ["new-doc"]) == 120
    assert "new-doc" not in [h.id for h in open_index(folder).search(["parse url scheme host path"], k=3)[0]]
    with pytest.raises(EmbedkitError, match="no document with id"):
        delete_documents(folder, ["missing"])


@pytest.mark.slow  # builds twice, the second time with Seismic
def test_rebuild_with_seismic_reuses_kept_shards(tmp_path, sparse_minilm, sparse_corpus, monkeypatch):
    folder = tmp_path / "index"
    corpus = Corpus(str(sparse_corpus[0]))
    build_index(str(sparse_minilm), corpus, folder, IndexSettings(batch_size=16, shard_size=50), progress=False)
    assert sorted(p.name for p in (folder / "shards").glob("csr-*.npz")) == ["csr-00000.npz", "csr-00001.npz",
                                                                            "csr-00002.npz"]
    from embedkit.models.sparse import SparseVectorEncoder

    def no_encoding(self, texts):
        raise AssertionError("the kept shards should have been reused")

    monkeypatch.setattr(SparseVectorEncoder, "encode_documents", no_encoding)
    build_index(str(sparse_minilm), corpus, folder, IndexSettings(backend="seismic", batch_size=16, shard_size=50),
                overwrite=True, progress=False)
    assert open_index(folder).manifest.backend == "seismic"


def test_sparse_model_refused_by_dense_backend(tmp_path, sparse_minilm, sparse_corpus):
    with pytest.raises(EmbedkitError, match="is for dense models.*sparse model"):
        build_index(str(sparse_minilm), Corpus(str(sparse_corpus[0])), tmp_path / "x", IndexSettings(backend="flat"))
    from embedkit.models.dense import load_dense_model

    with pytest.raises(EmbedkitError, match="sparse \\(SPLADE\\) model, not a dense one"):
        load_dense_model(str(sparse_minilm))


def test_seismic_batch_search_equals_one_search_per_query(tmp_path):
    """The seismic backend's one batch_search call (one thread, hits placed by query id) returns what one search
    per query returns, run after run; a query without terms gets no hits."""
    from embedkit.config import SeismicConfig
    from embedkit.index.sparse_index import build_seismic, seismic_search

    rng = np.random.default_rng(1)
    docs = sp.random(2000, 1500, density=0.02, format="csr", random_state=rng, dtype=np.float32)
    queries = sp.random(40, 1500, density=0.006, format="lil", random_state=rng, dtype=np.float32)
    queries[3] = 0  # no terms
    queries = queries.tocsr()
    queries.eliminate_zeros()
    build_seismic(docs, tmp_path, SeismicConfig())
    import seismic

    index = seismic.SeismicIndex.load(str(tmp_path / "seismic.index.seismic"))
    string, options = seismic.get_seismic_string(), SeismicConfig()
    runs = [seismic_search(index, queries, 10, options) for _ in range(3)]
    for scores, positions in runs[1:]:
        np.testing.assert_array_equal(positions, runs[0][1])
        np.testing.assert_array_equal(scores, runs[0][0])
    scores, positions = runs[0]
    assert (positions[3] == -1).all()
    for i in range(40):
        if i == 3 or not queries[i].nnz:
            continue
        hits = index.search(str(i), queries[i].indices.astype(str).astype(string), queries[i].data, k=10,
                            query_cut=options.query_cut, heap_factor=options.heap_factor)
        assert [int(d) for _, _, d in hits] == positions[i][:len(hits)].tolist()
        np.testing.assert_allclose([s for _, s, _ in hits], scores[i][:len(hits)], rtol=1e-6)
