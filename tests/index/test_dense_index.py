import numpy as np
import pytest

from embedkit.data.corpus import Corpus
from embedkit.errors import EmbedkitError
from embedkit.config import IndexSettings
from embedkit.index.build import build_index, open_index


@pytest.fixture(scope="module")
def dense_index(tmp_path_factory, tiny_modernbert, code_beir):
    folder = tmp_path_factory.mktemp("idx") / "index"
    build_index(str(tiny_modernbert), Corpus(str(code_beir)), folder,
                IndexSettings(batch_size=32, shard_size=128), progress=False)
    return folder


def test_build_search_reload_returns_ids_scores_text(dense_index, tiny_modernbert, code_beir):
    index = open_index(dense_index)
    assert index.manifest.kind == "dense" and index.manifest.num_documents == 600
    assert len(index.store.ids) == 600
    (hits,) = index.search(["return the absolute value"], k=5)
    assert len(hits) == 5 and hits[0].score >= hits[-1].score
    corpus = dict(Corpus(str(code_beir)))
    assert all(hit.text == corpus[hit.id] for hit in hits)
    assert not (dense_index.parent / "index.partial").exists()


def test_exact_index_equals_brute_force(dense_index, code_beir):
    index = open_index(dense_index)
    docs = list(Corpus(str(code_beir)))
    doc_vecs = index.encoder.encode_documents([t for _, t in docs])
    queries = ["parse a date", "open a file for reading"]
    q_vecs = index.encoder.encode_queries(queries)
    expected = np.argsort(-(q_vecs @ doc_vecs.T), axis=1)[:, :11]  # one beyond the top 10, for ties at rank 10
    scores, positions = index.search_positions(queries, 10)
    expected_scores = np.take_along_axis(q_vecs @ doc_vecs.T, expected, 1)
    np.testing.assert_allclose(scores, expected_scores[:, :10], rtol=1e-4, atol=1e-5)
    # the same documents, except where the random tiny model scores two of them within float noise (the
    # corpus was encoded shard by shard for the index, all at once here: other batches, other last bits)
    for got, want, row_scores in zip(positions, expected, expected_scores):
        gaps = np.abs(np.diff(row_scores))  # (10,): to the next document, the 11th included
        clear = (gaps > 1e-5) & (np.abs(np.diff(row_scores, prepend=np.inf))[:10] > 1e-5)
        assert [index.store.ids[p] for p, c in zip(got, clear) if c] == [docs[i][0] for i, c in zip(want, clear) if c]


def test_other_model_is_refused(dense_index, minilm_path):
    with pytest.raises(EmbedkitError, match="different model"):
        open_index(dense_index, minilm_path)


def test_existing_index_needs_overwrite(dense_index, tiny_modernbert, code_beir):
    with pytest.raises(EmbedkitError, match="--overwrite"):
        build_index(str(tiny_modernbert), Corpus(str(code_beir)), dense_index)


@pytest.mark.slow  # encodes the corpus twice with MiniLM
def test_hnsw_finds_the_exact_top_hit(tmp_path, minilm_path, code_beir, code_pairs):
    """HNSW against exact search, with a pretrained model: a random tiny model maps many documents to
    near-identical vectors, where the exact top hit is a tie and the comparison is noise."""
    exact_dir, hnsw_dir = tmp_path / "flat", tmp_path / "hnsw"
    build_index(minilm_path, Corpus(str(code_beir)), exact_dir, progress=False)
    build_index(minilm_path, Corpus(str(code_beir)), hnsw_dir,
                IndexSettings(backend="hnsw"), progress=False)
    hnsw, exact = open_index(hnsw_dir), open_index(exact_dir)
    queries = [p.query for p in code_pairs[:20]]
    agree = [h[0].id == e[0].id for h, e in zip(hnsw.search(queries, 1), exact.search(queries, 1))]
    assert sum(agree) >= 18
