"""The bad-input table: each mistake a user can make gets one clear message and exit code 2 from the CLI,
with nothing half-written where the output would go."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from embedkit.cli import main

DOCS = [("d1", "def add(a, b): return a + b"), ("d2", "def sub(a, b): return a - b"),
        ("d3", "def mul(a, b): return a * b")]
QUERIES = [("q1", "add two numbers"), ("q2", "subtract numbers")]
QRELS = [("q1", "d1", 1), ("q2", "d2", 1)]


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    with open(path, "wb") as f:
        for line in lines:
            f.write((line.encode("utf-8") if isinstance(line, str) else line) + b"\n")
    return path


def doc(doc_id: str, text: str) -> str:
    return json.dumps({"_id": doc_id, "text": text})


def index_cli(capsys, model, corpus: Path, index_dir: Path, *extra) -> tuple[int, str]:
    return run_cli(capsys, "index", "--model", model, "--corpus", corpus, "--index-dir", index_dir,
                   "--batch-size", 8, *extra)


def assert_refused(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    # progress bars share stderr; the message itself is one line
    messages = [line for line in err.replace("\r", "\n").splitlines() if "embedkit: error: " in line]
    assert len(messages) == 1, err
    for needle in needles:
        assert needle in messages[0], err


# --- corpora ---------------------------------------------------------------------------------------

def test_malformed_jsonl_names_file_and_line(tmp_path, capsys, tiny_modernbert):
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", "one"), doc("d2", "two"), '{"_id": "d3", "text": '])
    code, err = index_cli(capsys, tiny_modernbert, corpus, tmp_path / "index")
    assert_refused(code, err, f"{corpus}:3", "malformed JSON")
    assert not (tmp_path / "index").exists()


def test_missing_field_names_file_line_and_fields(tmp_path, capsys, tiny_modernbert):
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", "one"), json.dumps({"_id": "d2", "body_text": "x"})])
    code, err = index_cli(capsys, tiny_modernbert, corpus, tmp_path / "index")
    assert_refused(code, err, f"{corpus}:2", "missing field", "'text'", "body_text")
    assert not (tmp_path / "index").exists()


def test_duplicate_document_id(tmp_path, capsys, tiny_modernbert):
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", "one"), doc("d2", "two"), doc("d1", "again")])
    code, err = index_cli(capsys, tiny_modernbert, corpus, tmp_path / "index")
    assert_refused(code, err, f"{corpus}:3", "duplicate document id 'd1'")
    assert not (tmp_path / "index").exists()


def test_empty_documents_are_skipped_with_a_count(tmp_path, capsys, caplog, tiny_modernbert):
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", "one"), doc("d2", "   "), doc("d3", "three"),
                                                     json.dumps({"_id": "d4", "title": "", "text": ""})])
    with caplog.at_level(logging.WARNING):
        code, err = index_cli(capsys, tiny_modernbert, corpus, tmp_path / "index")
    assert code == 0, err
    assert any("skipped 2 empty documents" in r.getMessage() for r in caplog.records), caplog.text
    manifest = json.loads((tmp_path / "index" / "embedkit-index.json").read_text())
    assert manifest["num_documents"] == 2


def test_corpus_of_only_empty_documents_is_refused(tmp_path, capsys, tiny_modernbert):
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", ""), doc("d2", " ")])
    code, err = index_cli(capsys, tiny_modernbert, corpus, tmp_path / "index")
    assert_refused(code, err, str(corpus), "no non-empty documents")
    assert not (tmp_path / "index").exists()


def test_non_utf8_bytes_name_file_and_line(tmp_path, capsys, tiny_modernbert):
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", "one"), b'{"_id": "d2", "text": "caf\xe9"}'])
    code, err = index_cli(capsys, tiny_modernbert, corpus, tmp_path / "index")
    assert_refused(code, err, f"{corpus}:2", "not valid UTF-8")
    assert not (tmp_path / "index").exists()


def test_non_utf8_bytes_in_qrels(tmp_path, capsys, make_beir):
    data = make_beir(tmp_path / "data", DOCS, QUERIES, QRELS)
    write_lines(data / "qrels" / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1", b"q2\td\xff2\t1"])
    code, err = run_cli(capsys, "eval", "--model", "bm25", "--data", data)
    assert_refused(code, err, "test.tsv:3", "not valid UTF-8")


# --- queries and qrels (through `embedkit eval`, with BM25 so no model is loaded) -------------------------

def test_empty_query_is_refused(tmp_path, capsys, make_beir):
    data = make_beir(tmp_path / "data", DOCS, [("q1", "add two numbers"), ("q2", "  ")], QRELS)
    output = tmp_path / "results.json"
    code, err = run_cli(capsys, "eval", "--model", "bm25", "--data", data, "--output", output)
    assert_refused(code, err, "queries.jsonl", "empty text", "'q2'")
    assert not output.exists()


def test_qrels_naming_unknown_query_ids(tmp_path, capsys, make_beir):
    data = make_beir(tmp_path / "data", DOCS, QUERIES, QRELS + [("q9", "d1", 1)])
    code, err = run_cli(capsys, "eval", "--model", "bm25", "--data", data)
    assert_refused(code, err, "test.tsv", "query ids are not in queries.jsonl", "'q9'")


def test_qrels_naming_mostly_unknown_document_ids(tmp_path, capsys, make_beir):
    data = make_beir(tmp_path / "data", DOCS, QUERIES, [("q1", "d404", 1), ("q2", "d405", 1), ("q2", "d2", 1)])
    output = tmp_path / "results.json"
    code, err = run_cli(capsys, "eval", "--model", "bm25", "--data", data, "--output", output)
    assert_refused(code, err, "test.tsv", "2 of the 3 judged document ids are not in the corpus", "'d404'")
    assert not output.exists()


def test_a_few_unknown_document_ids_are_kept_as_beir_keeps_them(tmp_path, capsys, make_beir):
    """ArguAna judges ids its corpus lacks: BEIR and MTEB keep them (unretrievable), so does embedkit."""
    data = make_beir(tmp_path / "data", DOCS, QUERIES, QRELS + [("q1", "d404", 1)])
    output = tmp_path / "results.json"
    code, _ = run_cli(capsys, "eval", "--model", "bm25", "--data", data, "--output", output)
    assert code == 0 and json.loads(output.read_text())["judged_missing"] == 1


def test_malformed_queries_jsonl(tmp_path, capsys, make_beir):
    data = make_beir(tmp_path / "data", DOCS, QUERIES, QRELS)
    write_lines(data / "queries.jsonl", [json.dumps({"_id": "q1", "text": "x"}), json.dumps({"_id": "q2"})])
    code, err = run_cli(capsys, "eval", "--model", "bm25", "--data", data)
    assert_refused(code, err, "queries.jsonl:2", "missing field")


# --- recipes --------------------------------------------------------------------------------------------

def test_recipe_typo_names_the_key(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("kind: dense\ntrainng:\n  learning_rate: 1e-4\n", encoding="utf-8")
    code, err = run_cli(capsys, "train", recipe, "--dry-run")
    assert_refused(code, err, "trainng")


def test_recipe_nested_typo_names_the_key(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("kind: dense\ntraining:\n  learnig_rate: 1e-4\n", encoding="utf-8")
    code, err = run_cli(capsys, "train", recipe, "--dry-run")
    assert_refused(code, err, "learnig_rate")


def test_recipe_wrong_type_names_the_key(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("kind: dense\ntraining:\n  batch_size: many\n", encoding="utf-8")
    code, err = run_cli(capsys, "train", recipe, "--dry-run")
    assert_refused(code, err, "training.batch_size", "'many'")


def test_set_override_wrong_type(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("kind: dense\n", encoding="utf-8")
    code, err = run_cli(capsys, "train", recipe, "--dry-run", "--set", "training.bf16=maybe")
    assert_refused(code, err, "training.bf16")


def test_recipe_not_yaml(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("kind: dense\ntraining: [unclosed\n", encoding="utf-8")
    code, err = run_cli(capsys, "train", recipe, "--dry-run")
    assert_refused(code, err, str(recipe), "not valid YAML")


# --- models and indexes -------------------------------------------------------------------------------

def test_model_folder_that_is_not_one(tmp_path, capsys):
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hello")
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", "one")])
    code, err = index_cli(capsys, not_a_model, corpus, tmp_path / "index")
    assert_refused(code, err, str(not_a_model), "not a model folder")
    assert not (tmp_path / "index").exists() and not (tmp_path / "index.partial").exists()


@pytest.fixture()
def tiny_index(tmp_path, capsys, tiny_modernbert) -> Path:
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc(i, t) for i, t in DOCS])
    code, err = index_cli(capsys, tiny_modernbert, corpus, tmp_path / "index")
    assert code == 0, err
    return tmp_path / "index"


def test_search_with_another_model_is_refused(tmp_path, capsys, tiny_index, minilm_path):
    code, err = run_cli(capsys, "search", "--index-dir", tiny_index, "--model", minilm_path, "add numbers")
    assert_refused(code, err, str(tiny_index), "different model", "Rebuild")


def test_search_a_folder_that_is_not_an_index(tmp_path, capsys, tiny_modernbert):
    code, err = run_cli(capsys, "search", "--index-dir", tiny_modernbert, "add numbers")
    assert_refused(code, err, "is not an embedkit index")


@pytest.mark.parametrize("key, value, message", [("kind", "splade", "unknown encoder kind 'splade'"),
                                                ("backend", "annoy", "unknown index backend 'annoy'")])
def test_search_an_index_of_an_unknown_kind_or_backend(tmp_path, capsys, tiny_index, key, value, message):
    manifest = json.loads((tiny_index / "embedkit-index.json").read_text())
    (tiny_index / "embedkit-index.json").write_text(json.dumps(manifest | {key: value}))
    code, err = run_cli(capsys, "search", "--index-dir", tiny_index, "add numbers")
    assert_refused(code, err, message)


def test_faiss_index_refuses_another_backend(tiny_index):
    from embedkit.errors import EmbedkitError
    from embedkit.index.faiss_index import FaissIndex

    manifest = json.loads((tiny_index / "embedkit-index.json").read_text())
    (tiny_index / "embedkit-index.json").write_text(json.dumps(manifest | {"backend": "plaid"}))
    with pytest.raises(EmbedkitError, match="is a plaid index, not a FAISS one"):
        FaissIndex(tiny_index)


# --- output folders that already hold something -------------------------------------------------------

def test_index_into_existing_folder_needs_overwrite(tmp_path, capsys, tiny_index, tiny_modernbert):
    before = {p.relative_to(tiny_index): p.read_bytes() for p in tiny_index.rglob("*") if p.is_file()}
    corpus = write_lines(tmp_path / "other.jsonl", [doc("x1", "something else")])
    code, err = index_cli(capsys, tiny_modernbert, corpus, tiny_index)
    assert_refused(code, err, str(tiny_index), "already holds another index", "documents:", "--overwrite")
    assert {p.relative_to(tiny_index): p.read_bytes() for p in tiny_index.rglob("*") if p.is_file()} == before
    # the same command that built it: kept as it is, nothing encoded
    code, err = index_cli(capsys, tiny_modernbert, tmp_path / "corpus.jsonl", tiny_index)
    assert code == 0 and "already holds this index" in err, err
    assert {p.relative_to(tiny_index): p.read_bytes() for p in tiny_index.rglob("*") if p.is_file()} == before
    code, err = index_cli(capsys, tiny_modernbert, corpus, tiny_index, "--overwrite")
    assert code == 0, err
    assert [json.loads(line) for line in (tiny_index / "doc_ids.jsonl").read_text().splitlines()] == ["x1"]


def test_train_into_existing_folder_needs_overwrite(tmp_path, capsys, minilm_path):
    output = tmp_path / "model"
    output.mkdir()
    (output / "config.json").write_text("{}")
    train = write_lines(tmp_path / "train.jsonl", [json.dumps({"query": "add", "positive": "def add(a, b): ..."})])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"kind: dense\noutput_dir: {output}\nmodel: {{name: {minilm_path}}}\ndata:\n  train: {train}\n",
                      encoding="utf-8")
    code, err = run_cli(capsys, "train", recipe)
    assert_refused(code, err, str(output), "holds no model embedkit trained", "--overwrite")
    assert [p.name for p in output.iterdir()] == ["config.json"]
    assert not (tmp_path / "model.partial").exists()


def test_misspelled_training_file_is_named_before_any_work(tmp_path, capsys, minilm_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"kind: dense\noutput_dir: {tmp_path / 'model'}\nmodel: {{name: {minilm_path}}}\n"
                      f"data:\n  train: {tmp_path / 'trian.jsonl'}\n", encoding="utf-8")
    code, err = run_cli(capsys, "train", recipe)
    assert_refused(code, err, "data.train: no such local path", "trian.jsonl")
    assert "trained with other settings" not in err
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()


# --- security -----------------------------------------------------------------------------------------

def test_model_with_custom_code_is_refused_without_running_it(tmp_path, capsys):
    model = tmp_path / "remote-code-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "customx", "auto_map": {
        "AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}}))
    marker = tmp_path / "code-ran"
    for name in ("configuration_x.py", "modeling_x.py"):
        (model / name).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", "one")])
    code, err = index_cli(capsys, model, corpus, tmp_path / "index")
    assert_refused(code, err, str(model), "ships its own Python code", "trust_remote_code: true")
    assert not marker.exists()
    assert not (tmp_path / "index").exists()


def test_no_pickle_is_loaded_by_embedkit():
    """np.load keeps allow_pickle=False (its default); no torch.load, pickle or joblib anywhere in the package."""
    import re

    import embedkit

    root = Path(embedkit.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#")[0]
            if re.search(r"allow_pickle\s*=\s*True|torch\.load\(|\bimport pickle\b|pickle\.loads?\(|joblib", code):
                offenders.append(f"{path.relative_to(root)}:{lineno}: {line.strip()}")
    assert not offenders, offenders


# --- the table: every sub-command with bad input: exit 2, one error line of its own, nothing left behind -------

def run_main(capsys, argv: list) -> tuple[int, str]:
    """``main`` in-process; argparse's own refusals (SystemExit) count as the exit code they carry."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_clean_line(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.replace("\r", "\n").splitlines()
    messages = [line for line in lines if "embedkit: error:" in line]
    assert len(messages) == 1 and messages[0].startswith("embedkit: error: "), err  # never glued to a bar
    assert needle in messages[0], err


def _recipe_text(tmp: Path, model: str, train: str, extra: str = "") -> Path:
    recipe = tmp / "recipe.yaml"
    recipe.write_text(f"kind: dense\noutput_dir: {tmp / 'model'}\nmodel: {{name: {model}}}\n"
                      f"data:\n  train: {train}\n{extra}", encoding="utf-8")
    return recipe


def _bad_model(tmp: Path) -> Path:
    folder = tmp / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 8}')
    return folder


# (id, argv given (tmp folder, corpus, pairs, beir folder, minilm), what the error line must say)
BAD = [
    ("train-txt-data", lambda t, c, p, b, m: ["train", _recipe_text(t, m, str(t / "pairs.txt"))],
     "unsupported training data file .txt"),
    ("mine-tsv-data", lambda t, c, p, b, m: ["mine", "--model", "bm25", "--data", t / "pairs.tsv", "--output",
                                             t / "out.jsonl"], "unsupported training data file .tsv"),
    ("index-dir-under-a-file", lambda t, c, p, b, m: ["index", "--backend", "bm25", "--corpus", c, "--index-dir",
                                                      t / "pairs.txt" / "index"], "is a file, not a folder"),
    ("index-dir-is-a-file", lambda t, c, p, b, m: ["index", "--backend", "bm25", "--corpus", c, "--index-dir",
                                                   t / "pairs.txt"], "a folder is expected here"),
    ("eval-output-is-a-folder", lambda t, c, p, b, m: ["eval", "--model", "bm25", "--data", b, "--output",
                                                       t / "a-folder"],
     "a file is expected here"),
    ("eval-run-file-missing-parent-is-a-file", lambda t, c, p, b, m: [
        "eval", "--model", "bm25", "--data", b, "--run-file", t / "pairs.txt" / "run.trec"], "is a file, not a folder"),
    ("mine-output-is-a-folder", lambda t, c, p, b, m: ["mine", "--model", "bm25", "--data", p, "--output",
                                                       t / "a-folder"],
     "a file is expected here"),
    ("report-output-is-a-file", lambda t, c, p, b, m: ["report", b, "--output", t / "pairs.txt"],
     "a folder is expected here"),
    ("model-config-without-model-type", lambda t, c, p, b, m: [
        "index", "--model", _bad_model(t), "--corpus", c, "--index-dir", t / "index"], "no model_type"),
    ("index-batch-size-0", lambda t, c, p, b, m: ["index", "--model", m, "--corpus", c, "--index-dir", t / "index",
                                                  "--batch-size", 0], "batch_size: must be at least 1"),
    ("index-max-length-negative", lambda t, c, p, b, m: [
        "index", "--model", m, "--corpus", c, "--index-dir", t / "index", "--max-length", -5], "max_length"),
    ("index-max-length-0", lambda t, c, p, b, m: [
        "index", "--model", m, "--corpus", c, "--index-dir", t / "index", "--max-length", 0], "max_length"),
    ("index-max-length-beyond-positions", lambda t, c, p, b, m: [
        "index", "--model", m, "--corpus", c, "--index-dir", t / "index", "--max-length", 100000], "positions"),
    ("index-shard-size-0", lambda t, c, p, b, m: [
        "index", "--model", m, "--corpus", c, "--index-dir", t / "index", "--shard-size", 0], "shard_size"),
    ("search-k-0", lambda t, c, p, b, m: ["search", "--index-dir", t, "-k", 0, "q"], "-k"),
    ("search-k-4000-digits", lambda t, c, p, b, m: ["search", "--index-dir", t, "-k", "9" * 4000, "q"],
     "(4000 characters)"),
    ("search-batch-size-0", lambda t, c, p, b, m: ["search", "--index-dir", t, "--batch-size", 0, "q"],
     "--batch-size"),
    ("eval-k-negative", lambda t, c, p, b, m: ["eval", "--model", "bm25", "--data", b, "-k", -5], "eval.k"),
    ("set-eval-k-negative", lambda t, c, p, b, m: ["train", _recipe_text(t, m, p), "--dry-run", "--set",
                                                   "eval.k=-5"], "eval.k: must be at least 1"),
    ("recipe-eval-k-0", lambda t, c, p, b, m: ["run", _recipe_text(t, m, p, "eval:\n  k: 0\n")], "eval.k"),
    ("recipe-max-steps-0", lambda t, c, p, b, m: ["train", _recipe_text(t, m, p, "training:\n  max_steps: 0\n")],
     "training.max_steps"),
    ("sweep-only-index-x", lambda t, c, p, b, m: ["sweep", _recipe_text(t, m, p), "--set-grid",
                                                  "training.learning_rate=1e-4", "--only-index", "x"],
     "--only-index"),
    ("serve-bad-host", lambda t, c, p, b, m: ["serve", "--index-dir", t, "--host", "not..a..host"],
     "unknown address"),
    ("quickstart-train-size-0", lambda t, c, p, b, m: ["quickstart", "--workdir", t / "qs", "--train-size", 0],
     "--train-size"),
    ("quickstart-eval-size-0", lambda t, c, p, b, m: ["quickstart", "--workdir", t / "qs", "--eval-size", 0],
     "--eval-size"),
    ("mine-margin-negative", lambda t, c, p, b, m: ["mine", "--model", "bm25", "--data", p, "--output",
                                                    t / "out.jsonl", "--margin", -1], "relative_margin"),
    ("run-stages-empty", lambda t, c, p, b, m: ["run", _recipe_text(t, m, p), "--stages", ","], "--stages"),
    ("export-into-the-model", lambda t, c, p, b, m: ["export", m, m], "is the input model"),
    ("set-k-5000-digits", lambda t, c, p, b, m: ["train", _recipe_text(t, m, p), "--dry-run", "--set",
                                                 "eval.k=" + "9" * 5000], "(5002 characters)"),
    ("eval-k-beyond-its-bound", lambda t, c, p, b, m: ["eval", "--model", "bm25", "--data", b, "-k", "9" * 20],
     "eval.k: must be at most 10000, got a number of over 18 digits"),
]


@pytest.mark.parametrize("name, argv, needle", BAD, ids=[row[0] for row in BAD])
def test_bad_input_table(tmp_path, capsys, make_beir, minilm_path, name, argv, needle):
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc(i, t) for i, t in DOCS])
    pairs = write_lines(tmp_path / "pairs.jsonl", [json.dumps({"query": f"q{i}", "positive": f"doc {i}"})
                                                   for i in range(8)])
    (tmp_path / "pairs.txt").write_text("add\tdef add(a, b): ...\n")
    (tmp_path / "pairs.tsv").write_text("query\tpositive\nadd\tdef add(a, b): ...\n")
    (tmp_path / "a-folder").mkdir()
    beir = make_beir(tmp_path / "beir", DOCS, QUERIES, QRELS)
    args = argv(tmp_path, corpus, pairs, beir, minilm_path)
    before = sorted(tmp_path.rglob("*"))
    code, err = run_main(capsys, args)
    assert_one_clean_line(code, err, needle)
    left = [p for p in sorted(tmp_path.rglob("*")) if p not in before and p.parent.name != "cache"
            and p.name != "cache"]
    assert not left, left


def test_missing_optional_library_is_named_before_any_work(tmp_path, capsys, monkeypatch, make_beir):
    from dataclasses import replace

    from embedkit.index import registry

    plaid = registry.BACKENDS["plaid"]
    monkeypatch.setitem(registry.BACKENDS, "plaid", replace(plaid, requires=("no_such_module_xyz", "plaid")))
    data = make_beir(tmp_path / "beir", DOCS, QUERIES, QRELS)
    code, err = run_main(capsys, ["eval", "--model", "bm25", "--data", data, "--backend", "plaid"])
    assert_one_clean_line(code, err, "pip install 'embedkit[plaid]'")


def test_corpus_error_comes_before_the_model_loads(tmp_path, capsys, monkeypatch, tiny_modernbert):
    from embedkit.index import encoders

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the corpus was checked")

    monkeypatch.setattr(encoders, "load_encoder", no_model)
    corpus = write_lines(tmp_path / "corpus.jsonl", [doc("d1", "one"), '{"_id": "d2", "text": '])
    code, err = index_cli(capsys, tiny_modernbert, corpus, tmp_path / "index")
    assert_one_clean_line(code, err, f"{corpus}:2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "corpus.jsonl"] or \
        not (tmp_path / "index.partial").exists()


def test_an_open_progress_bar_is_ended_before_the_error(capsys):
    from tqdm import tqdm

    from embedkit.cli.entry import print_error

    bar = tqdm(total=10, desc="encoding")
    bar.update(3)
    assert print_error("boom") == 2
    err = capsys.readouterr().err
    assert "\nembedkit: error: boom" in err.replace("\r", "\n") and err.endswith("embedkit: error: boom\n")


def test_python_api_mistakes(tmp_path, capsys):
    from embedkit.errors import EmbedkitError
    from embedkit.index.build import open_index
    from embedkit.train.recipes import load_recipe

    corpus = write_lines(tmp_path / "corpus.jsonl", [doc(i, t) for i, t in DOCS])
    assert main(["index", "--backend", "bm25", "--corpus", str(corpus), "--index-dir", str(tmp_path / "i")]) == 0
    index = open_index(tmp_path / "i")
    with pytest.raises(EmbedkitError, match=r"search one query as search\(\[\"a query\"\], k\)"):
        index.search("a query", 3)
    with pytest.raises(EmbedkitError, match="k: must be a whole number of at least 1, got 0"):
        index.search(["a query"], k=0)
    assert [h.id for h in index.search(["add numbers"], 1)[0]] == ["d1"]
    recipe = tmp_path / "r.yaml"
    recipe.write_text("kind: dense\n", encoding="utf-8")
    assert load_recipe(recipe, "training.max_steps=7").training.max_steps == 7
    with pytest.raises(EmbedkitError, match="eval.k: must be at least 1, got 0"):
        load_recipe(recipe, ["eval.k=0"])
    from embedkit.config import EvalOptions

    with pytest.raises(EmbedkitError, match="k: must be at least 1, got -5"):
        EvalOptions(k=-5)


def test_bm25_corpus_without_words(tmp_path, capsys):
    """bm25s fails on an empty vocabulary with a bare ValueError; embedkit names the problem. The encoded shards
    stay in index.partial (as after any failure once encoding is done), so a rerun does not read the corpus again."""
    corpus = write_lines(tmp_path / "x.jsonl", [doc("a", "x"), doc("b", "y")])
    code, err = run_main(capsys, ["index", "--backend", "bm25", "--corpus", corpus, "--index-dir", tmp_path / "i"])
    assert_one_clean_line(code, err, "no word BM25 can index")
    assert not (tmp_path / "i").exists()
