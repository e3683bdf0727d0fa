"""The qdrant backend against the real engine in-process (Qdrant Edge): the same ranking quality as flat (dense)
and exact MaxSim (ColBERT), built from kept shards without encoding, add/delete, an upload killed mid-way and
resumed, and bad settings refused before any work. A Qdrant server cannot run here: the server path is only
tested up to its connection check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedkit.config import IndexSettings, QdrantConfig
from embedkit.errors import EmbedkitError
from embedkit.index.build import open_index
from embedkit.index.qdrant_index import QdrantIndex
from embedkit.index.qdrant_store import EdgeStore
from tests.helpers import ndcg_at_10, rebuild_from_shards, write_beir

pytest.importorskip("qdrant_edge")


def qdrant(max_length: int | None = None, **options) -> IndexSettings:
    """Backend qdrant; ``max_length`` as the source index was encoded with (else its shards are not reused)."""
    return IndexSettings(backend="qdrant", max_length=max_length, qdrant=QdrantConfig(**options))


TINY = 64  # the tiny_indexes fixture's max_length


@pytest.mark.slow  # the MiniLM index of 600 documents (a session fixture, shared with the quantization tests)
def test_dense_local_shard_scores_as_flat(tmp_path, minilm_code_index, code_beir):
    index = rebuild_from_shards(minilm_code_index, tmp_path / "index", code_beir, qdrant())
    assert isinstance(index, QdrantIndex) and index.manifest.backend == "qdrant"
    assert index.manifest.settings["vector"]["distance"] == "Cosine"
    flat = ndcg_at_10(open_index(minilm_code_index), code_beir)
    assert abs(ndcg_at_10(index, code_beir) - flat) <= 0.002


@pytest.fixture()
def colbert_beir(tmp_path, code_pairs) -> Path:
    """Queries and qrels over the 80 documents of the tiny_indexes fixture."""
    return write_beir(tmp_path / "beir", [(p.id, p.code) for p in code_pairs[:80]],
                      [(f"q{i}", p.query) for i, p in enumerate(code_pairs[:80])],
                      [(f"q{i}", p.id, 1) for i, p in enumerate(code_pairs[:80])])


@pytest.mark.colbert
def test_colbert_multivector_maxsim_scores_as_exact(tmp_path, tiny_indexes, colbert_beir):
    _, exact_dir = tiny_indexes
    exact = open_index(exact_dir)
    index = rebuild_from_shards(exact_dir, tmp_path / "index", Path(exact.manifest.corpus),
                                qdrant(TINY), kind="colbert")
    assert index.manifest.kind == "colbert" and index.manifest.settings["vector"]["multivector"]
    assert abs(ndcg_at_10(index, colbert_beir) - ndcg_at_10(exact, colbert_beir)) <= 0.002
    queries = exact.encoder.encode_queries(["read a file", "sort a list"])
    s_exact, p_exact = exact.search_encoded(queries, 5)
    s_qdrant, p_qdrant = index.search_encoded(queries, 5)
    np.testing.assert_allclose(s_qdrant, s_exact, rtol=2e-3, atol=2e-3)  # exact stores float16 tokens


def test_killed_upload_resumes_to_the_same_collection(tmp_path, tiny_indexes, monkeypatch):
    dense_dir, _ = tiny_indexes
    corpus = Path(open_index(dense_dir).manifest.corpus)
    whole = rebuild_from_shards(dense_dir, tmp_path / "whole", corpus, qdrant(TINY, upload_batch=16))
    calls = {"n": 0}
    real = EdgeStore.upsert

    def dies_after_two_batches(self, doc_ids, vectors):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as a kill would, mid-upload
        real(self, doc_ids, vectors)

    monkeypatch.setattr(EdgeStore, "upsert", dies_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        rebuild_from_shards(dense_dir, tmp_path / "resumed", corpus, qdrant(TINY, upload_batch=16))
    assert (tmp_path / "resumed.partial" / "qdrant-upload.json").is_file()
    calls["n"] = 10  # no more failures; count the batches the rerun sends
    resumed = rebuild_from_shards(dense_dir, tmp_path / "resumed", corpus, qdrant(TINY, upload_batch=16))
    assert calls["n"] - 10 == 3  # 80 documents in batches of 16: two were in, three sent
    assert resumed.points.count() == whole.points.count() == 80
    queries = whole.encoder.encode_queries(["open a socket", "parse arguments", "join paths"])
    (s1, p1), (s2, p2) = whole.search_encoded(queries, 10), resumed.search_encoded(queries, 10)
    np.testing.assert_allclose(s1, s2, rtol=1e-6)
    # the tiny random model gives some documents identical vectors: ties may come in either order
    assert [sorted(zip(np.round(s, 5), p)) for s, p in zip(s1, p1)] == \
        [sorted(zip(np.round(s, 5), p)) for s, p in zip(s2, p2)]


def test_add_and_delete_are_upsert_and_delete(tmp_path, tiny_indexes):
    dense_dir, _ = tiny_indexes
    corpus = Path(open_index(dense_dir).manifest.corpus)
    index = rebuild_from_shards(dense_dir, tmp_path / "index", corpus, qdrant(TINY))
    index.encoder = index.encoder.inner  # documents may be encoded now
    first = index.store.ids[0]
    assert index.delete([first]) == 79 and index.points.count() == 79
    assert first not in [h.id for h in index.search(["anything"], k=79, with_text=False)[0]]
    assert index.add([("new-doc", "def add(a, b):\n    return a + b")]) == 80 and index.points.count() == 80
    vector = index.encoder.encode_documents(["def add(a, b):\n    return a + b"])
    scores, positions = index.search_encoded(vector, 1)
    assert index.store.ids[int(positions[0, 0])] == "new-doc" and scores[0, 0] == pytest.approx(1.0, abs=1e-4)


def test_unreachable_server_is_one_error_before_encoding(tmp_path, tiny_modernbert, capsys):
    from embedkit.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "a", "text": "def f(): pass"}\n')
    code = main(["index", "--model", str(tiny_modernbert), "--corpus", str(corpus), "--index-dir",
                 str(tmp_path / "i"), "--backend", "qdrant", "--qdrant-url", "http://127.0.0.1:9",
                 "--qdrant-timeout", "5"])
    assert code == 2
    assert "cannot reach the Qdrant server at http://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "i").exists() and not (tmp_path / "i.partial" / "shards").exists()


def test_a_shard_of_other_settings_is_refused_before_work_unless_overwrite(tmp_path, tiny_indexes):
    from embedkit.index.qdrant_index import BACKEND

    dense_dir, _ = tiny_indexes
    shard = tmp_path / "shared-shard"
    dense = rebuild_from_shards(dense_dir, tmp_path / "dense", Path(open_index(dense_dir).manifest.corpus),
                                qdrant(TINY, path=str(shard)))
    dim = dense.manifest.embedding_dim
    dense.points.close()
    settings = qdrant(TINY, path=str(shard))
    BACKEND.preflight(settings, dim, multivector=False, normalized=True, overwrite=False)  # the same: accepted
    with pytest.raises(EmbedkitError, match=rf"holds other settings \(size: {dim} -> {dim + 1}\); pass --overwrite"):
        BACKEND.preflight(settings, dim + 1, multivector=False, normalized=True, overwrite=False)
    with pytest.raises(EmbedkitError, match="name: dense -> colbert; distance: Cosine -> Dot; multivector"):
        BACKEND.preflight(settings, dim, multivector=True, normalized=False, overwrite=False)
    BACKEND.preflight(settings, dim + 1, multivector=False, normalized=True, overwrite=True)
    assert json.loads((shard / EdgeStore.SPEC).read_text())["size"] == dim + 1  # replaced by a new, empty shard


@pytest.mark.slow  # four evaluations and two builds through the command line
@pytest.mark.parametrize("kind, reference", [("dense", "flat"),
                                             pytest.param("colbert", "exact", marks=pytest.mark.colbert)])
def test_eval_search_and_move_through_the_command_line(tmp_path, tiny_modernbert, colbert_beir, capsys, kind,
                                                       reference):
    """`embedkit eval --backend qdrant` scores as the reference backend; `embedkit index --backend qdrant` moves an
    index without encoding (the shards are reused); `embedkit search` answers from it."""
    from embedkit.cli import main

    scores = {}
    for backend in (reference, "qdrant"):
        out = tmp_path / f"{backend}.json"
        assert main(["eval", "--model", str(tiny_modernbert), "--kind", kind, "--data", str(colbert_beir),
                     "--backend", backend, "--max-length", "64", "--no-cache", "--output", str(out)]) == 0
        scores[backend] = json.loads(out.read_text())["ndcg@10"]
    assert abs(scores["qdrant"] - scores[reference]) <= 0.002, scores
    common = ["--model", str(tiny_modernbert), "--kind", kind, "--corpus", str(colbert_beir / "corpus.jsonl"),
              "--index-dir", str(tmp_path / "index"), "--max-length", "64"]
    assert main(["index", *common, "--backend", reference]) == 0
    capsys.readouterr()
    assert main(["-v", "index", *common, "--backend", "qdrant", "--overwrite"]) == 0
    assert "already encoded" in capsys.readouterr().err
    assert main(["search", "--index-dir", str(tmp_path / "index"), "--json", "-k", "3", "read a file"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert len(hits) == 3 and open_index(tmp_path / "index").manifest.backend == "qdrant"


def test_push_to_a_collection_and_pull_back_into_a_local_shard(tmp_path, tiny_indexes, monkeypatch):
    """The server side is qdrant-client's own local engine (the same client calls a server gets); no Qdrant
    server can run here."""
    from qdrant_client import QdrantClient

    from embedkit.index.base import IndexManifest
    from embedkit.index.qdrant_store import ServerStore, VectorSpec
    from embedkit.index.qdrant_sync import pull, push

    dense_dir, _ = tiny_indexes
    corpus = Path(open_index(dense_dir).manifest.corpus)
    index = rebuild_from_shards(dense_dir, tmp_path / "index", corpus, qdrant(TINY))
    queries = index.encoder.encode_queries(["open a socket", "parse arguments"])
    before = index.search_encoded(queries, 5)
    del index
    monkeypatch.setenv("QDRANT_API_KEY", "secret-key-123")
    client = QdrantClient(location=":memory:")
    config = QdrantConfig(url="http://cluster.example:6333", collection="code", upload_batch=16)
    assert push(tmp_path / "index", config, client=client) == 80
    assert client.count("code", exact=True).count == 80
    saved = IndexManifest.load(tmp_path / "index").settings
    assert saved["url"] == "http://cluster.example:6333" and "path" not in saved
    assert saved["api_key_env"] == "QDRANT_API_KEY"
    assert "secret-key-123" not in (tmp_path / "index" / "embedkit-index.json").read_text()
    with pytest.raises(EmbedkitError, match="pass --overwrite"):
        pull(tmp_path / "index", client=client)  # the pushed-from shard is still there
    assert pull(tmp_path / "index", client=client, overwrite=True, batch=16) == 80
    after = open_index(tmp_path / "index")
    assert after.manifest.settings["path"] == "qdrant" and "url" not in after.manifest.settings
    np.testing.assert_allclose(after.search_encoded(queries, 5)[0], before[0], rtol=1e-5)
    other = QdrantConfig(url="http://cluster.example:6333", collection="code")
    with pytest.raises(EmbedkitError, match=r"holds other settings \(size: 64 -> 7\)"):
        ServerStore(other, VectorSpec(**{**after.manifest.settings["vector"], "size": 7}), client=client)
    from embedkit.cli import main

    assert main(["index", "--index-dir", str(tmp_path / "index"), "--push", "--qdrant-url", "http://127.0.0.1:9",
                 "--qdrant-timeout", "5"]) == 2
    assert open_index(tmp_path / "index").manifest.settings["path"] == "qdrant"  # unchanged by the failed push


@pytest.mark.colbert
def test_colbert_rerank_over_a_qdrant_first_stage(tmp_path, tiny_indexes, code_pairs):
    """A qdrant dense index as the first stage of ColBERT reranking gives what a flat first stage gives."""
    from embedkit.config import RetrieveConfig
    from embedkit.retrieve.retriever import compose

    dense_dir, colbert_dir = tiny_indexes
    index = rebuild_from_shards(dense_dir, tmp_path / "index", Path(open_index(dense_dir).manifest.corpus),
                                qdrant(TINY))
    options = RetrieveConfig(rerank="colbert", rerank_index=str(colbert_dir), rerank_top_n=80)
    queries = [p.query for p in code_pairs[:3]]
    over_qdrant = compose(index, options).search_positions(queries, 5)
    over_flat = compose(open_index(dense_dir), options).search_positions(queries, 5)
    np.testing.assert_allclose(over_qdrant[0], over_flat[0], rtol=1e-5)  # all 80 reranked: same top 5
