import json

import pytest

from embedkit.data.beir import load_beir
from embedkit.data.corpus import Corpus
from embedkit.errors import EmbedkitError


def test_jsonl_corpus_joins_title_and_text(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "title": "T", "text": "body"}\n\n{"id": 2, "contents": "x"}\n')
    assert list(Corpus(str(path))) == [("1", "T body"), ("2", "x")]


def test_parquet_corpus(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"doc_id": ["a", "b"], "text": ["one", "two"]}), path)
    assert list(Corpus(str(path)).batches(1)) == [(["a"], ["one"]), (["b"], ["two"])]


def test_corpus_is_rereadable_and_batched(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"_id": str(i), "text": f"doc {i}"}) + "\n" for i in range(5)))
    corpus = Corpus(str(path))
    assert [len(ids) for ids, _ in corpus.batches(2)] == [2, 2, 1]
    assert list(corpus) == list(corpus)


def test_missing_text_field_lists_expected(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "body_text": "x"}\n')
    with pytest.raises(EmbedkitError, match=r"c\.jsonl:1: missing field 'text' or .*found fields: _id, body_text"):
        list(Corpus(str(path)))


def test_beir_restricts_queries_to_judged_split(code_beir):
    data = load_beir(code_beir, "test")
    assert len(data.queries) == 200 and set(data.queries) == set(data.qrels)


def test_beir_qrels_without_header_and_unknown_split(tmp_path, code_beir):
    import shutil

    folder = tmp_path / "b"
    shutil.copytree(code_beir, folder)
    lines = (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]
    (folder / "qrels" / "dev.tsv").write_text("\n".join(lines[:3]) + "\n")
    assert len(load_beir(folder, "dev").queries) == 3
    with pytest.raises(EmbedkitError, match="qrels splits here: dev, test"):
        load_beir(folder, "train")


def test_hub_dataset_unreachable_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedkitError, match="could not load dataset 'nobody/nothing'.*local file or folder"):
        list(Corpus("nobody/nothing"))


def test_code_corpus_is_real_and_disjoint(code_pairs):
    from embedkit.data.code_corpus import iter_code_pairs, site_packages_root

    assert len(code_pairs) == 600
    pair = code_pairs[0]
    assert pair.query and '"""' not in pair.code.split("\n")[1] and pair.code.lstrip().startswith(("def", "async", "@"))
    site = {p.query for p in iter_code_pairs(site_packages_root(), limit=300)}
    assert site and all("site-packages" not in p.id for p in code_pairs)


def test_qrels_are_parsed_as_beir_writes_them(tmp_path, make_beir):
    """BEIR writes and reads its TSVs with csv QUOTE_MINIMAL: an id holding a quote is quoted and doubled."""
    import csv

    from embedkit.data.beir import read_qrels

    path = tmp_path / "qrels.tsv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerows([["query-id", "corpus-id", "score"], ["q1", 'doc-"7"', 1], ["q2", "plain", 2]])
    assert '"doc-""7"""' in path.read_text()
    assert read_qrels(path) == {"q1": {'doc-"7"': 1}, "q2": {"plain": 2}}


def test_judged_ids_missing_from_the_corpus_are_kept_and_counted(tmp_path, make_beir, caplog):
    from embedkit.data.beir import check_judged_documents

    corpus = [(f"d{i}", f"text {i}") for i in range(4)]
    queries = [("q1", "one"), ("q2", "two")]
    folder = make_beir(tmp_path / "arguana", corpus, queries,
                       [("q1", "d1", 1), ("q2", "d2", 1), ("q2", "test-free-speech-debate-yfsdfkhbwu-con03b", 1)])
    data = load_beir(folder)
    with caplog.at_level("WARNING"):
        coverage = check_judged_documents(data)
    assert coverage.missing == ("test-free-speech-debate-yfsdfkhbwu-con03b",) and coverage.documents == 4
    assert "1 of 3 judged document ids are not in the corpus" in caplog.text and "con03b" in caplog.text
    assert data.qrels["q2"] == {"d2": 1, "test-free-speech-debate-yfsdfkhbwu-con03b": 1}  # still judged


def test_mostly_missing_judged_ids_mean_the_wrong_corpus(tmp_path, make_beir):
    from embedkit.data.beir import check_judged_documents

    folder = make_beir(tmp_path / "mixed", [("d1", "x")], [("q1", "y")], [("q1", "a", 1), ("q1", "b", 1)])
    with pytest.raises(EmbedkitError, match=r"qrels/test\.tsv: 2 of the 2 judged document ids are not in the corpus"):
        check_judged_documents(load_beir(folder))


def test_benchmark_corpora_keep_empty_documents_user_corpora_skip_them(tmp_path, make_beir, caplog):
    folder = make_beir(tmp_path / "fiqa", [("d1", "text"), ("d2", ""), ("d3", "more")], [("q1", "text")],
                       [("q1", "d1", 1)])
    assert list(load_beir(folder).corpus) == [("d1", "text"), ("d2", ""), ("d3", "more")]
    corpus = Corpus(str(folder))
    with caplog.at_level("WARNING"):
        assert [doc_id for doc_id, _ in corpus] == ["d1", "d3"]
    assert corpus.skipped_empty == 1 and "skipped 1 empty documents" in caplog.text


def test_one_relevant_folder_round_trips_through_the_reader(tmp_path):
    from embedkit.data.beir import write_one_relevant

    folder = write_one_relevant(tmp_path / "set", [("d1", "first ünïcode"), ("d2", "second")],
                                [("q1", "find the first", "d1"), ("q2", 'the "second"', "d2")])
    data = load_beir(folder)
    assert list(data.corpus) == [("d1", "first ünïcode"), ("d2", "second")]
    assert data.queries == {"q1": "find the first", "q2": 'the "second"'}
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}


def test_beir_writer_refuses_an_id_that_cannot_go_in_a_qrels_tsv(tmp_path):
    from embedkit.data.beir import write_one_relevant

    with pytest.raises(EmbedkitError, match="contains a tab or newline"):
        write_one_relevant(tmp_path / "set", [("d\t1", "x")], [("q1", "x", "d\t1")])
