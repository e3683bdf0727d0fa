"""The packed forward's keys were called ``unpadded``: recipes, ``--set``, flags and saved recipes written with
the old name keep working, each read as the new key with a warning on stderr that names it (a saved model's
recipe: tests/config/test_recorded.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe

OLD_KEYS = {"training": {"unpadded": "off"}, "index": {"unpadded": "on"}, "eval": {"unpadded": "off"}}


def test_old_recipe_keys_are_read_as_the_new_ones_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old.yaml"
    path.write_text("training:\n  unpadded: off\nindex:\n  unpadded: 'on'\neval:\n  unpadded: off\n")
    with caplog.at_level(logging.WARNING, logger="embedkit.config"):
        recipe = load_recipe(path)
    assert (recipe.training.packed, recipe.index.packed, recipe.eval.packed) == ("off", "on", "off")
    warned = [r.getMessage() for r in caplog.records if r.name.startswith("embedkit.config")]
    assert warned == [f"{section}.unpadded is deprecated: write {section}.packed (same values)"
                      for section in ("training", "index", "eval")]
    assert recipe.to_dict()["training"]["packed"] == "off" and "unpadded" not in recipe.to_dict()["training"]


def test_an_old_key_from_set_and_its_values_checked_as_the_new_key(caplog):
    with caplog.at_level(logging.WARNING, logger="embedkit.config"):
        assert load_recipe({}, ["index.unpadded=off"]).index.packed == "off"
    assert "index.unpadded is deprecated: write index.packed" in caplog.text
    with pytest.raises(EmbedkitError, match="eval.packed: 'yes' is not one of 'auto', 'on', 'off'"):
        load_recipe({"eval": {"unpadded": "yes"}})


def test_unquoted_on_and_off_are_the_modes_not_booleans(tmp_path):
    """YAML reads ``packed: off`` (and ``--set index.packed=on``) as a boolean: it means the mode."""
    path = tmp_path / "recipe.yaml"
    path.write_text("training:\n  packed: off\nindex:\n  packed: on\n")
    recipe = load_recipe(path, ["eval.packed=off"])
    assert (recipe.training.packed, recipe.index.packed, recipe.eval.packed) == ("off", "on", "off")
    with pytest.raises(EmbedkitError, match="training.bf16: expected"):  # a boolean field stays boolean
        load_recipe({"training": {"bf16": "on"}})


def test_both_names_at_once_is_an_error():
    with pytest.raises(EmbedkitError, match="training.unpadded and training.packed are one setting"):
        load_recipe({"training": {"unpadded": "off", "packed": "on"}})


def test_the_old_flag_sets_the_same_field_with_a_warning(caplog):
    from embedkit.cli import build_parser as _parser
    from embedkit.cli.fields import from_args
    from embedkit.config import EvalOptions, IndexConfig

    with caplog.at_level(logging.WARNING, logger="embedkit.cli.fields"):
        args = _parser().parse_args(["index", "--corpus", "c.jsonl", "--unpadded", "off"])
    assert from_args(args, IndexConfig, "index").packed == "off"
    assert "--unpadded is deprecated: use --packed" in caplog.text
    assert from_args(_parser().parse_args(["eval", "--model", "bm25", "--unpadded", "on"]), EvalOptions,
                     "eval").packed == "on"
    with pytest.raises(SystemExit):  # same choices as --packed
        _parser().parse_args(["eval", "--model", "bm25", "--unpadded", "yes"])
    assert "--unpadded" not in _parser()._subparsers._group_actions[0].choices["index"].format_help()


def test_the_old_flag_warns_on_stderr(tmp_path):
    """From the command line: the warning is on stderr, stdout stays for results."""
    cmd = [sys.executable, "-m", "embedkit", "eval", "--model", "bm25", "--data", str(tmp_path / "missing"),
           "--unpadded", "off"]
    done = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert "--unpadded is deprecated: use --packed" in done.stderr
    assert "deprecated" not in done.stdout
