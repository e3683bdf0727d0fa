"""Multi-vector indexes: exact MaxSim against the ColBERT library's scorer, PLAID against exact MaxSim
(pretrained MiniLM as the ColBERT backbone, so that agreement means something), reload, append, and the CLI.
Every test here runs in both environments (sentence-transformers' MultiVectorEncoder, PyLate)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedkit.config import IndexSettings, PlaidConfig
from embedkit.data.corpus import Corpus
from embedkit.index.build import build_index, open_index

MAX_LENGTH = 64  # document tokens: short keeps MiniLM encoding of the fixture corpus to seconds
# The shared MiniLM indexes take ~40 s to build on a loaded 2-core machine (encoded twice: PLAID and exact).
SLOW = pytest.mark.slow
pytestmark = pytest.mark.colbert


def test_exact_maxsim_matches_the_library_scoring(colbert_library):
    from embedkit.index.maxsim import exact_topk, maxsim_scores

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, size=23)
    docs = [rng.normal(size=(n, 8)).astype(np.float32) for n in lengths]
    queries = rng.normal(size=(5, 4, 8)).astype(np.float32)
    ours = maxsim_scores(queries, np.concatenate(docs), lengths)  # (5, 23)
    # the library's own scoring function (sentence-transformers' maxsim, PyLate's colbert_scores), documents of
    # different lengths, some with all similarities negative (padding must not win a max)
    ref = np.stack([colbert_library.maxsim(q, docs) for q in queries])  # (5, 23)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    # chunked top-k (tiny chunks: documents are split across many reads) equals the full sort
    scores, positions = exact_topk(queries, np.concatenate(docs), lengths, k=30, chunk_tokens=7)
    assert positions[:, 23:].tolist() == [[-1] * 7] * 5
    np.testing.assert_array_equal(positions[:, :5], np.argsort(-ours, axis=1, kind="stable")[:, :5])


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, code_pairs) -> tuple[Path, Path, list]:
    """160 stdlib functions to index and 20 more to append later, as JSONL corpora."""
    folder = tmp_path_factory.mktemp("colbert-corpus")
    main, extra = folder / "corpus.jsonl", folder / "extra.jsonl"
    for path, rows in ((main, code_pairs[:160]), (extra, code_pairs[160:180])):
        with open(path, "w", encoding="utf-8") as f:
            for p in rows:
                f.write(json.dumps({"_id": p.id, "text": p.code}) + "\n")
    return main, extra, code_pairs[:180]


@pytest.fixture(scope="module")
def minilm_indexes(tmp_path_factory, minilm_path, small_corpus):
    """A PLAID and an exact index of the same corpus, built with one loaded encoder."""
    from embedkit.index.encoders import load_encoder

    settings = {name: IndexSettings(backend=name, batch_size=32, max_length=MAX_LENGTH, packed="off",
                                    plaid=PlaidConfig(n_ivf_probe=16)) for name in ("plaid", "exact")}
    encoder = load_encoder("colbert", minilm_path, settings["plaid"])
    root = tmp_path_factory.mktemp("colbert-indexes")
    built = {}
    for name in ("plaid", "exact"):
        built[name] = build_index(minilm_path, Corpus(str(small_corpus[0])), root / name, settings[name],
                                  kind="colbert", progress=False, encoder=encoder)
    return built, encoder


@SLOW
def test_plaid_top10_agrees_with_exact_maxsim(minilm_indexes, small_corpus):
    built, encoder = minilm_indexes
    queries = [p.query for p in small_corpus[2][:30]]
    plaid = open_index(built["plaid"], encoder=encoder)
    exact = open_index(built["exact"], encoder=encoder)
    assert plaid.manifest.backend == "plaid" and exact.manifest.backend == "exact"
    vectors = encoder.encode_queries(queries)
    ps, pp = plaid.search_encoded(vectors, 10)
    es, ep = exact.search_encoded(vectors, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(pp.tolist(), ep.tolist())])
    assert overlap >= 0.9, overlap
    # same document, same score: PLAID's full scores are MaxSim over decompressed (4-bit) vectors
    same = pp[:, 0] == ep[:, 0]
    assert same.mean() >= 0.75  # near-ties may swap under 4-bit residuals
    # fast-plaid builds are not reproducible even with a seed, and a 4-bit residual occasionally lands 5-10%
    # off: bound the typical error tightly and the worst one loosely
    rel = np.abs(ps[same, 0] - es[same, 0]) / np.abs(es[same, 0])
    assert np.median(rel) < 0.02 and rel.max() < 0.15, rel
    # the right function (query i documents function i) is usually first: the backbone is pretrained
    top1 = [hits[0].id for hits in plaid.search(queries[:10], k=1, with_text=False)]
    assert sum(t == p.id for t, p in zip(top1, small_corpus[2][:10])) >= 5


@SLOW
def test_reload_gives_same_results_and_no_pickle(minilm_indexes, small_corpus):
    built, encoder = minilm_indexes
    queries = [p.query for p in small_corpus[2][:5]]
    first = open_index(built["plaid"], encoder=encoder).search_positions(queries, 5)
    again = open_index(built["plaid"], encoder=encoder).search_positions(queries, 5)
    np.testing.assert_array_equal(first[1], again[1])
    assert not list(Path(built["plaid"]).rglob("*.pkl"))
    assert not (Path(built["plaid"]) / "plaid" / "embeddings.npy").exists()


def _copy_of(minilm_indexes, kind: str, tmp_path: Path):
    """A copy of the session's ``kind`` index (tests that add or delete change their own) and its encoder."""
    import shutil

    built, encoder = minilm_indexes
    shutil.copytree(built[kind], tmp_path / kind)
    return tmp_path / kind, encoder


@SLOW
@pytest.mark.parametrize("kind", ["plaid", "exact"])
def test_add_documents_appends_searchable_positions(minilm_indexes, small_corpus, tmp_path, kind):
    from embedkit.index.build import add_documents

    copy, encoder = _copy_of(minilm_indexes, kind, tmp_path)
    num = add_documents(copy, Corpus(str(small_corpus[1])), encoder=encoder)
    assert num == 180
    index = open_index(copy, encoder=encoder)
    assert index.manifest.num_documents == 180 and len(index.store.ids) == 180
    added = small_corpus[2][160:180]
    # a document's own opening as the query: it should find that document (ids map to the right texts)
    hits = index.search([p.code[:120] for p in added], k=10, with_text=True)
    found = sum(any(h.id == p.id for h in row) for row, p in zip(hits, added))
    assert found >= 17, found
    assert all(h.text == index.store.text(index.store.ids.index(h.id)) for h in hits[0])
    with pytest.raises(Exception, match="already in"):
        add_documents(copy, Corpus(str(small_corpus[1])), encoder=encoder)


@SLOW
@pytest.mark.parametrize("kind", ["plaid", "exact"])
def test_delete_documents_renumbers_and_keeps_the_rest_searchable(minilm_indexes, small_corpus, tmp_path, kind):
    copy, encoder = _copy_of(minilm_indexes, kind, tmp_path)
    index = open_index(copy, encoder=encoder)
    pairs = small_corpus[2][:160]
    gone = [p.id for p in pairs[:40:2]]  # every other one of the first 40: positions shift in between
    assert index.delete(gone) == 140
    assert index.manifest.num_documents == 140 and len(index.store.ids) == 140 and gone[0] not in index.store.ids
    kept = [p for p in pairs[:40] if p.id not in gone] + pairs[150:160]
    hits = index.search([p.code[:120] for p in kept], k=5, with_text=True)
    assert not {h.id for row in hits for h in row} & set(gone)
    found = sum(row[0].id == p.id for row, p in zip(hits, kept) if row)
    assert found >= 0.8 * len(kept), found  # ids still point at the right vectors after renumbering
    assert all(h.text == index.store.text(index.store.ids.index(h.id)) for h in hits[0])
    with pytest.raises(Exception, match="no document with id"):
        index.delete(["not-there"])


def test_cli_eval_colbert_writes_the_dense_keys(tiny_modernbert, code_beir, tmp_path, colbert_library, embedkit_cache):
    from embedkit.cli import main

    out = tmp_path / "results.json"
    assert main(["eval", "--model", str(tiny_modernbert), "--data", str(code_beir), "--kind", "colbert",
                 "--output", str(out), "--max-length", "48", "--packed", "off"]) == 0
    result = json.loads(out.read_text())
    for key in ("ndcg@10", "recall@100", "mrr@10", "map@100"):
        assert 0.0 <= result[key] <= 1.0
    assert result["kind"] == "colbert" and result["num_documents"] == 600
    # the index was cached under EMBEDKIT_CACHE, not ~/.cache
    cached = list((embedkit_cache / "indexes").glob("colbert-*"))
    assert cached
    assert result["backend"] == "exact"  # auto: a small corpus is searched by exact MaxSim
    # its manifest records the ColBERT library that encoded it
    settings = json.loads((cached[0] / "embedkit-index.json").read_text())["settings"]
    assert settings["colbert_library"] == colbert_library.name and settings["colbert_library_version"]


@SLOW  # three CLI runs, each loading torch, PyLate and the model
def test_cli_index_append_search(tiny_modernbert, small_corpus, tmp_path, capsys):
    from embedkit.cli import main

    index_dir = tmp_path / "idx"
    common = ["--model", str(tiny_modernbert), "--index-dir", str(index_dir), "--kind", "colbert",
              "--max-length", "32", "--packed", "off"]
    assert main(["index", "--corpus", str(small_corpus[0]), "--backend", "plaid", *common]) == 0
    assert main(["index", "--corpus", str(small_corpus[1]), "--add", *common]) == 0
    assert "180 documents" in capsys.readouterr().out
    added = small_corpus[2][170]
    assert main(["search", "--index-dir", str(index_dir), "--json", "-k", "5", added.code[:100]]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert len(hits) == 5 and hits[0]["id"] == added.id  # its own opening finds the appended document
