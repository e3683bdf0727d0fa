"""Hard-negative mining: BM25 and dense candidates, filters against false negatives, CLI, output format."""

from __future__ import annotations

import json
import random

import pytest

from embedkit.errors import EmbedkitError
from embedkit.train.mining import MiningOptions, mine, select_negatives


@pytest.fixture()
def pairs_jsonl(tmp_path, code_pairs):
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for p in code_pairs[200:320]:
            f.write(json.dumps({"query": p.query, "positive": p.code}) + "\n")
    return path


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_select_negatives_filters():
    ranked, scores = [0, 1, 2, 3, 4, 5], [0.95, 0.9, 0.7, 0.6, 0.5, 0.4]
    rng = random.Random(0)
    top = MiningOptions(num_negatives=2, range_min=0, range_max=6)
    assert select_negatives(ranked, scores, 0.8, {1}, top, rng) == [0, 2]
    margin = MiningOptions(num_negatives=2, range_min=0, range_max=6, absolute_margin=0.15)
    assert select_negatives(ranked, scores, 0.8, {1}, margin, rng) == [3, 4]
    relative = MiningOptions(num_negatives=2, range_min=0, range_max=6, relative_margin=0.25)  # <= 0.6
    assert select_negatives(ranked, scores, 0.8, set(), relative, rng) == [3, 4]
    capped = MiningOptions(num_negatives=2, range_min=2, range_max=4, max_score=0.65)
    assert select_negatives(ranked, scores, 0.8, set(), capped, rng) is None  # only rank 3 survives
    sample = MiningOptions(num_negatives=2, range_min=1, range_max=6, sampling="random")
    chosen = select_negatives(ranked, scores, 0.8, set(), sample, rng)
    assert len(set(chosen)) == 2 and set(chosen) <= {1, 2, 3, 4, 5}


def test_bm25_mining_writes_recipe_format(pairs_jsonl, tmp_path):
    out = tmp_path / "mined" / "mined.jsonl"
    report = mine(pairs_jsonl, out, "bm25", MiningOptions(num_negatives=3, range_min=1, range_max=30,
                                                          relative_margin=0.05))
    rows = _rows(out)
    assert report.rows_out == len(rows) > 0 and report.rows_in == 120
    for row in rows:
        assert list(row) == ["query", "positive", "negative_1", "negative_2", "negative_3"]
        negatives = [row[f"negative_{i}"] for i in (1, 2, 3)]
        assert row["positive"] not in negatives and len(set(negatives)) == 3
    # the mined file is what a recipe reads: columns map straight onto the loss inputs
    from embedkit.config import ColumnsConfig
    from embedkit.train.data import read_source, select_columns

    ds = select_columns(read_source(str(out), None, "train"), ColumnsConfig(), str(out))
    assert ds.column_names == ["query", "positive", "negative_1", "negative_2", "negative_3"]


def test_bm25_margin_drops_near_duplicates(tmp_path):
    # q0's positive and a near copy of it: a margin-free miner would take the copy as a "negative".
    docs = ["def add(a, b): return a + b  # add two numbers", "def add(a, b): return a + b  # add two numbers!",
            "def neg(a): return -a  # negate numbers", "def sub(a, b): return a - b", "def div(a, b): return a / b"]
    rows = [{"query": "add two numbers", "positive": docs[0]}] + [
        {"query": f"other {i}", "positive": d} for i, d in enumerate(docs[1:])]
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    plain = mine(path, tmp_path / "a.jsonl", "bm25", MiningOptions(num_negatives=1, range_max=4))
    first = _rows(plain.output)[0]
    assert first["negative_1"] == docs[1]
    guarded = mine(path, tmp_path / "b.jsonl", "bm25",
                   MiningOptions(num_negatives=1, range_max=4, relative_margin=0.1))
    (first,) = [r for r in _rows(guarded.output) if r["query"] == "add two numbers"]
    assert first["negative_1"] == docs[2]


def _check_dense(pairs_jsonl, out, model):
    report = mine(pairs_jsonl, out, model, MiningOptions(num_negatives=2, range_min=2, range_max=20,
                                                         absolute_margin=0.0, batch_size=64))
    rows = _rows(out)
    assert report.rows_out == len(rows) > 0
    assert all(r["positive"] not in (r["negative_1"], r["negative_2"]) for r in rows)
    return report


def test_dense_mining_tiny(pairs_jsonl, tmp_path, tiny_modernbert):
    _check_dense(pairs_jsonl, tmp_path / "dense.jsonl", str(tiny_modernbert))


@pytest.mark.slow
def test_dense_mining_minilm(pairs_jsonl, tmp_path, minilm_path):
    report = _check_dense(pairs_jsonl, tmp_path / "dense.jsonl", minilm_path)
    assert report.rows_out > 60  # a real model scores most positives above their neighbours


def test_cross_encoder_rescoring(pairs_jsonl, tmp_path, tiny_modernbert):
    from sentence_transformers import CrossEncoder

    ce_dir = tmp_path / "tiny-ce"
    CrossEncoder(str(tiny_modernbert), num_labels=1, max_length=64).save(str(ce_dir))  # random: mechanics only
    rescored = mine(pairs_jsonl, tmp_path / "ce.jsonl", "bm25", max_samples=30,
                    options=MiningOptions(num_negatives=2, range_max=6, cross_encoder=str(ce_dir), batch_size=64))
    assert 0 < rescored.rows_out <= 30


def test_mining_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "positive": "b"}\n{"query": \n', encoding="utf-8")
    with pytest.raises(EmbedkitError, match="bad.jsonl:2"):
        mine(bad, tmp_path / "o.jsonl", "bm25")
    missing = tmp_path / "cols.jsonl"
    missing.write_text('{"question": "a", "positive": "b"}\n', encoding="utf-8")
    with pytest.raises(EmbedkitError, match="missing column"):
        mine(missing, tmp_path / "o.jsonl", "bm25")
    with pytest.raises(EmbedkitError, match="range_min"):
        MiningOptions(range_min=10, range_max=5).check()


def test_mine_cli(pairs_jsonl, tmp_path):
    from embedkit.cli import main

    out = tmp_path / "cli.jsonl"
    rc = main(["mine", "--model", "bm25", "--data", str(pairs_jsonl), "--output", str(out), "--num-negatives", "2",
               "--range-min", "1", "--range-max", "20", "--margin", "0.05"])
    assert rc == 0 and len(_rows(out)) > 0
    assert main(["mine", "--model", "bm25", "--data", str(tmp_path / "nope.jsonl"), "--output", str(out)]) == 2


def test_mine_flags_are_the_mining_options_fields():
    """Each flag parses into its MiningOptions field (same type checks); unset flags keep the field's default."""
    import dataclasses

    from embedkit.cli import build_parser
    from embedkit.cli.fields import from_args

    base = ["mine", "--model", "bm25", "--data", "d.jsonl", "--output", "o.jsonl"]
    assert from_args(build_parser().parse_args(base), MiningOptions, "mine") == MiningOptions()
    args = build_parser().parse_args(base + ["--margin", "0.05", "--no-faiss", "--sampling", "random",
                                             "--cross-encoder", "some/reranker", "--num-negatives", "2", "--seed", "7"])
    options = from_args(args, MiningOptions, "mine")
    assert (options.relative_margin, options.use_faiss, options.sampling, options.cross_encoder,
            options.num_negatives, options.seed) == (0.05, False, "random", "some/reranker", 2, 7)
    with pytest.raises(EmbedkitError, match="range_max: expected an integer"):
        from_args(build_parser().parse_args(base + ["--range-max", "many"]), MiningOptions, "mine")
    assert all(f.metadata.get("help") for f in dataclasses.fields(MiningOptions))


def test_mine_cli_refuses_bad_options_before_reading(tmp_path, capsys):
    from embedkit.cli import main

    missing = str(tmp_path / "not-read.jsonl")  # the options fail first, so the missing file is never reported
    argv = ["mine", "--model", "bm25", "--data", missing, "--output", str(tmp_path / "o"), "--batch-size", "0"]
    assert main(argv) == 2
    assert "mine.batch_size: must be at least 1" in capsys.readouterr().err


def test_bm25_mining_ranks_as_the_bm25_backend(pairs_jsonl, tmp_path):
    """Mining's BM25 is the bm25 backend's (same parameters, same tokenisation): with no filter, each row's
    first negative is the backend's best hit that is not the row's positive (or one tied with it)."""
    from embedkit.config import IndexSettings
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index, open_index

    rows = _rows(pairs_jsonl)
    documents = list(dict.fromkeys(r["positive"] for r in rows))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": d}) + "\n" for i, d in enumerate(documents)),
                      encoding="utf-8")
    index = open_index(build_index(None, Corpus(str(corpus)), tmp_path / "bm25", IndexSettings(backend="bm25"),
                                   progress=False))
    mined = {r["query"]: r["negative_1"] for r in _rows(mine(pairs_jsonl, tmp_path / "m.jsonl", "bm25",
                                                             MiningOptions(num_negatives=1, range_max=10)).output)}
    checked = 0
    for row in rows[:40]:
        if row["query"] not in mined:
            continue
        (hits,) = index.search([row["query"]], k=10)
        others = {h.text: h.score for h in hits if h.text != row["positive"]}
        assert others.get(mined[row["query"]]) == pytest.approx(max(others.values()), rel=1e-6), row["query"]
        checked += 1
    assert checked >= 20
