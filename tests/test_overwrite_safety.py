"""--overwrite replaces only a folder embedkit made (with its manifest of the same kind) and says what it
replaces; a user's folder or file is refused with exit 2 and left as it was. No output may be, contain or lie
inside an input. One test per command that writes (index, train, run, export, eval, mine, sweep, report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_bad_input import DOCS, QRELS, QUERIES, assert_refused, doc, run_cli, write_lines


def snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture()
def user_folder(tmp_path) -> Path:
    folder = tmp_path / "my-work"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture()
def corpus(tmp_path) -> Path:
    return write_lines(tmp_path / "corpus.jsonl", [doc(i, t) for i, t in DOCS])


def bm25_index(capsys, corpus: Path, index_dir: Path, *extra) -> tuple[int, str]:
    return run_cli(capsys, "index", "--backend", "bm25", "--corpus", corpus, "--index-dir", index_dir, *extra)


def test_index_overwrite_refuses_a_users_folder_and_file(tmp_path, capsys, corpus, user_folder):
    before = snapshot(user_folder)
    code, err = bm25_index(capsys, corpus, user_folder, "--overwrite")
    assert_refused(code, err, str(user_folder), "not an index folder embedkit made")
    assert snapshot(user_folder) == before
    plain = tmp_path / "notes.txt"
    plain.write_text("keep me")
    code, err = bm25_index(capsys, corpus, plain, "--overwrite")
    assert_refused(code, err, str(plain))
    assert plain.read_text() == "keep me"
    assert not list(tmp_path.glob(".*old*")) and not (tmp_path / "notes.txt.partial").exists()
    assert not (tmp_path / "my-work.partial").exists()


def test_index_overwrite_replaces_its_own_index_and_says_so(tmp_path, capsys, corpus):
    index = tmp_path / "index"
    assert bm25_index(capsys, corpus, index)[0] == 0
    other = write_lines(tmp_path / "other.jsonl", [doc("x1", "something else")])
    code, err = bm25_index(capsys, other, index, "--overwrite")
    assert code == 0, err
    assert f"replacing {index}" in err
    assert [json.loads(line) for line in (index / "doc_ids.jsonl").read_text().splitlines()] == ["x1"]


@pytest.mark.parametrize("where", ["equal", "inside"])
def test_index_folder_may_not_be_or_lie_in_the_corpus(tmp_path, capsys, make_beir, where):
    data = make_beir(tmp_path / "data", DOCS, QUERIES, QRELS)
    index_dir = data if where == "equal" else data / "index"
    before = snapshot(data)
    code, err = bm25_index(capsys, data, index_dir, "--overwrite")
    assert_refused(code, err, "--index-dir", "--corpus")
    assert snapshot(data) == before


def test_mine_output_may_not_be_its_input(tmp_path, capsys):
    rows = [json.dumps({"query": f"q{i}", "positive": f"document number {i}"}) for i in range(8)]
    data = write_lines(tmp_path / "pairs.jsonl", rows)
    before = data.read_bytes()
    code, err = run_cli(capsys, "mine", "--model", "bm25", "--data", data, "--output", data)
    assert_refused(code, err, "--output", "is the input --data")
    assert data.read_bytes() == before


def test_eval_output_refuses_a_users_file(tmp_path, capsys, make_beir):
    data = make_beir(tmp_path / "data", DOCS, QUERIES, QRELS)
    output = tmp_path / "notes.json"
    output.write_text('{"mine": 1}')
    code, err = run_cli(capsys, "eval", "--model", "bm25", "--data", data, "--output", output)
    assert_refused(code, err, str(output), "not a results file embedkit wrote")
    assert output.read_text() == '{"mine": 1}'
    fresh = tmp_path / "results.json"
    assert run_cli(capsys, "eval", "--model", "bm25", "--data", data, "--output", fresh)[0] == 0
    assert run_cli(capsys, "eval", "--model", "bm25", "--data", data, "--output", fresh)[0] == 0  # its own: fine


def _recipe(tmp_path: Path, output: Path, model: str, **sections: str) -> Path:
    train = write_lines(tmp_path / "train.jsonl", [json.dumps({"query": "add", "positive": "def add(a, b): ..."})])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"kind: dense\noutput_dir: {output}\nmodel: {{name: {model}}}\ndata:\n  train: {train}\n"
                      + "".join(f"{k}:\n  {v}\n" for k, v in sections.items()), encoding="utf-8")
    return recipe


def test_train_overwrite_refuses_a_users_folder(tmp_path, capsys, user_folder, minilm_path):
    before = snapshot(user_folder)
    code, err = run_cli(capsys, "train", _recipe(tmp_path, user_folder, minilm_path), "--overwrite")
    assert_refused(code, err, str(user_folder), "not a model folder embedkit made")
    assert snapshot(user_folder) == before
    assert not (tmp_path / "my-work.partial").exists()


def test_run_overwrite_refuses_a_users_folder(tmp_path, capsys, user_folder, minilm_path):
    before = snapshot(user_folder)
    code, err = run_cli(capsys, "run", _recipe(tmp_path, user_folder, minilm_path), "--overwrite")
    assert_refused(code, err, str(user_folder), "not a model folder embedkit made")
    assert snapshot(user_folder) == before
    assert not (tmp_path / "my-work.partial").exists() and not (tmp_path / "my-work-run").exists()


def test_sweep_overwrite_refuses_a_users_folder(tmp_path, capsys, make_beir, minilm_path):
    from embedkit.train.sweep import parse_grid, plan

    data = make_beir(tmp_path / "data", DOCS, QUERIES, QRELS)
    recipe = _recipe(tmp_path, tmp_path / "m", minilm_path, eval=f"data: [{data}]")
    grid = ["training.learning_rate=1e-4"]
    (variant,) = plan(recipe, [], parse_grid(grid))
    user = Path(variant.output_dir)
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    code, err = run_cli(capsys, "sweep", recipe, "--set-grid", *grid, "--overwrite")
    assert_refused(code, err, str(user), "not a model folder embedkit made")
    assert snapshot(user) == {"thesis.tex": b"years of work"}


def test_export_overwrite_refuses_a_users_folder(tmp_path, capsys, user_folder):
    model = tmp_path / "model"
    model.mkdir()
    before = snapshot(user_folder)
    code, err = run_cli(capsys, "export", model, user_folder, "--overwrite")
    assert_refused(code, err, str(user_folder), "not an exported model folder embedkit made")
    assert snapshot(user_folder) == before
    code, err = run_cli(capsys, "export", model, model / "inside", "--overwrite")
    assert_refused(code, err, "inside the input model")


def test_report_output_may_not_contain_its_results(tmp_path, capsys):
    results = tmp_path / "out" / "results"
    results.mkdir(parents=True)
    (results / "r.json").write_text("{}")
    code, err = run_cli(capsys, "report", results, "--output", tmp_path / "out")
    assert_refused(code, err, "--output", "contains the input results")


def test_publish_dir_refuses_without_a_manifest(tmp_path):
    from embedkit.artifacts import publish_dir
    from embedkit.errors import EmbedkitError

    target = tmp_path / "folder"
    target.mkdir()
    (target / "keep").write_text("x")
    with (pytest.raises(EmbedkitError, match="holds no embedkit-index.json"),
          publish_dir(target, overwrite=True, manifest="embedkit-index.json", what="an index")):
        pass
    assert (target / "keep").read_text() == "x"


def test_train_output_may_not_contain_its_training_data(tmp_path, capsys, minilm_path):
    folder = tmp_path / "data"
    folder.mkdir()
    recipe = _recipe(folder, folder, minilm_path)  # train.jsonl is written inside output_dir
    before = snapshot(folder)
    code, err = run_cli(capsys, "train", recipe, "--overwrite")
    assert_refused(code, err, "output_dir", "contains the input data.train")
    assert snapshot(folder) == before


def test_quickstart_refuses_a_users_folder(capsys, user_folder):
    before = snapshot(user_folder)
    code, err = run_cli(capsys, "quickstart", "--workdir", user_folder, "--train-size", 5, "--eval-size", 5)
    assert_refused(code, err, str(user_folder), "holds files the quickstart did not write")
    assert snapshot(user_folder) == before


def test_report_refuses_a_users_report_files(tmp_path, capsys, make_beir):
    data = make_beir(tmp_path / "data", DOCS, QUERIES, QRELS)
    results = tmp_path / "results"
    results.mkdir()
    assert run_cli(capsys, "eval", "--model", "bm25", "--data", data, "--output", results / "r.json")[0] == 0
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("# my notes\n")
    code, err = run_cli(capsys, "report", results, "--output", out)
    assert_refused(code, err, "report.md", "not part of a report embedkit wrote")
    assert (out / "report.md").read_text() == "# my notes\n" and not (out / "report.png").exists()
    fresh = tmp_path / "fresh"
    assert run_cli(capsys, "report", results, "--output", fresh)[0] == 0
    assert run_cli(capsys, "report", results, "--output", fresh)[0] == 0  # its own report: replaced
