import numpy as np
import pytest

from embedkit.config import IndexSettings
from embedkit.data.corpus import Corpus
from embedkit.errors import EmbedkitError
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
    brute = q_vecs @ doc_vecs.T
    expected = np.argsort(-brute, axis=1, kind="stable")[:, :10]
    scores, positions = index.search_positions(queries, 10)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expected, 1), rtol=1e-4, atol=1e-5)
    # The same documents; where two score exactly alike (the tiny random model maps some identical code to one
    # vector) either order is right, so ids are compared above the last score only, and the scores everywhere.
    for row, found, want in zip(range(len(queries)), positions, expected):
        cut = brute[row, want[-1]] + 1e-5
        assert {index.store.ids[p] for p in found if brute[row, p] > cut} == \
            {docs[i][0] for i in want if brute[row, i] > cut}
        assert sorted(np.round(brute[row, found], 5)) == sorted(np.round(brute[row, want], 5))


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
