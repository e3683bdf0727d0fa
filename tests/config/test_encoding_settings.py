"""The ColBERT library travels inside the encoding settings: ``colbert.library`` (``--colbert-library``) stays
the one key and flag, ``EncodeSettings.colbert_library`` carries its value to the encoders without being a key
of its own, and no settings key or recorded setting changes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import embedkit
from embedkit.config import NOT_RECORDED, EncodeSettings, recipe_keys, recorded_settings
from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe


def test_the_recipe_key_is_carried_by_the_index_and_eval_settings():
    recipe = load_recipe({"kind": "colbert", "colbert": {"library": "sentence-transformers"}})
    assert recipe.index.colbert_library == recipe.eval.colbert_library == "sentence-transformers"
    assert load_recipe({"kind": "colbert"}).index.colbert_library == "auto"


def test_the_carried_field_is_no_key_and_leaves_the_recipe_dict_as_it_was():
    keys = [key for key, *_ in recipe_keys()]
    assert "colbert.library" in keys and not [k for k in keys if k.endswith("colbert_library")]
    with pytest.raises(EmbedkitError, match=r"index\.colbert_library is not a key of its own: set colbert\.library"):
        load_recipe({"index": {"colbert_library": "pylate"}})
    raw = load_recipe({"colbert": {"library": "sentence-transformers"}}).to_dict()
    assert "colbert_library" not in raw["index"] and "colbert_library" not in raw["eval"]
    assert raw["colbert"]["library"] == "sentence-transformers"


def test_no_settings_key_records_the_library():
    assert "colbert_library" in NOT_RECORDED
    assert recorded_settings(EncodeSettings(colbert_library="pylate"), skip=NOT_RECORDED) == \
        recorded_settings(EncodeSettings(), skip=NOT_RECORDED)


def test_the_flag_lands_in_the_encoding_settings(tmp_path, monkeypatch):
    from embedkit import cli

    seen = {}

    def fake_build(model, corpus, index_dir, settings, **kwargs):
        seen["settings"] = settings
        return Path(index_dir)

    monkeypatch.setattr("embedkit.index.build.build_index", fake_build)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "x"}\n')
    assert cli.main(["index", "--backend", "bm25", "--corpus", str(corpus), "--index-dir", str(tmp_path / "i"),
                     "--colbert-library", "sentence-transformers"]) == 0
    assert seen["settings"].colbert_library == "sentence-transformers"


def test_no_function_takes_the_library_as_a_parameter_of_its_own():
    """It rides in the settings (EncodeSettings.colbert_library), so no signature passes it along or ignores it;
    the ColBERT library registry's own loaders take a ``library``."""
    package = Path(embedkit.__file__).parent
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in node.args.args + node.args.kwonlyargs]
                if "colbert_library" in names:
                    found.append(f"{path.relative_to(package)}:{node.lineno} {node.name}")
    assert found == []
