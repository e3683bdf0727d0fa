"""The sparse rows of the bad-input table, through the CLI: a non-MLM checkpoint for kind: sparse, a sparse model
given to a dense backend, regulariser weights out of range — each one `embedkit: error:` line and exit code 2,
before any work, with nothing written where the output would go."""

from __future__ import annotations

import yaml

from tests.helpers import write_beir
from tests.test_bad_input import DOCS, QRELS, QUERIES, assert_refused, index_cli, run_cli


def _recipe(tmp_path, model, train_jsonl, **sections) -> str:
    raw = {"kind": "sparse", "output_dir": str(tmp_path / "out"), "model": {"name": str(model)},
           "data": {"train": str(train_jsonl)}, "training": {"max_steps": 1, "batch_size": 4}, **sections}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def test_non_mlm_checkpoint_for_kind_sparse(tmp_path, capsys, train_jsonl):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2).save_pretrained(tmp_path / "gpt2")
    code, err = run_cli(capsys, "train", _recipe(tmp_path, tmp_path / "gpt2", train_jsonl))
    assert_refused(code, err, "'gpt2' checkpoint, which has no masked-language head")
    assert not (tmp_path / "out").exists()


def test_sparse_model_given_to_a_dense_backend(tmp_path, capsys, sparse_minilm):
    beir = write_beir(tmp_path / "beir", DOCS, QUERIES, QRELS)
    code, err = index_cli(capsys, sparse_minilm, beir / "corpus.jsonl", tmp_path / "index", "--backend", "flat")
    assert_refused(code, err, "is for dense models", "sparse model")
    assert not (tmp_path / "index").exists()


def test_regulariser_weights_out_of_range(tmp_path, capsys, tiny_modernbert, train_jsonl):
    recipe = _recipe(tmp_path, tiny_modernbert, train_jsonl, sparse={"document_regularizer_weight": 3.0})
    code, err = run_cli(capsys, "train", recipe)
    assert_refused(code, err, "sparse.document_regularizer_weight", "[0, 1.0]")
    recipe = _recipe(tmp_path, tiny_modernbert, train_jsonl)
    code, err = run_cli(capsys, "train", recipe, "--set", "sparse.query_regularizer_weight=-0.001")
    assert_refused(code, err, "sparse.query_regularizer_weight")
    assert not (tmp_path / "out").exists()
