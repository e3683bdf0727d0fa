"""Recipes read from YAML and mappings: unknown keys, wrong types, overrides, moved keys, YAML errors."""

from pathlib import Path

import pytest

from embedkit.config import Recipe
from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_defaults_validate():
    recipe = load_recipe({})
    assert isinstance(recipe, Recipe)
    assert recipe.kind == "dense" and recipe.loss.name == "mnrl"


def test_unknown_key_names_valid_ones():
    with pytest.raises(EmbedkitError) as err:
        load_recipe({"training": {"learnin_rate": 1e-4}})
    message = str(err.value)
    assert "training.learnin_rate" in message and "learning_rate" in message and "batch_size" in message


def test_unknown_top_level_key():
    with pytest.raises(EmbedkitError, match="unknown key modle; valid keys: kind, output_dir, model"):
        load_recipe({"modle": {}})


@pytest.mark.parametrize("raw, field", [
    ({"training": {"batch_size": "many"}}, "training.batch_size"),
    ({"training": {"bf16": "yes"}}, "training.bf16"),
    ({"kind": "splade"}, "kind"),
    ({"eval": {"data": {"a": 1}}}, "eval.data"),
])
def test_wrong_types_name_the_field(raw, field):
    with pytest.raises(EmbedkitError, match=field.replace(".", r"\.")):
        load_recipe(raw)


def test_set_overrides_parse_values_and_are_validated():
    recipe = load_recipe({"training": {"learning_rate": 1e-4}},
                         ["training.learning_rate=5e-5", "eval.data=[a, b]", "model.name=x/y"])
    assert recipe.training.learning_rate == pytest.approx(5e-5)
    assert recipe.eval.data == ["a", "b"] and recipe.model.name == "x/y"
    with pytest.raises(EmbedkitError, match="unknown key training.lr"):
        load_recipe({}, ["training.lr=1"])


def test_loss_must_match_kind():
    with pytest.raises(EmbedkitError, match="not a dense loss"):
        load_recipe({"loss": {"name": "contrastive"}})
    assert load_recipe({"kind": "colbert", "loss": {"name": "contrastive"}}).kind == "colbert"


def test_yaml_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: dense\nmodel:\n  name: [unclosed\n")
    with pytest.raises(EmbedkitError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_recipe(path)


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipes_load(path):
    recipe = load_recipe(path)
    assert recipe.output_dir


def test_paper_dpr_recipes_mirror_the_paper():
    base = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "modernbert-base-dpr-msmarco.yaml")
    large = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "modernbert-large-dpr-msmarco.yaml")
    assert (base.training.learning_rate, large.training.learning_rate) == (8e-5, 1e-4)
    for r in (base, large):
        assert r.data.subset == "triplet-hard" and r.data.max_samples == 1_250_000
        assert r.loss.name == "cached_mnrl" and r.training.batch_size == 512  # negatives shared over 512 rows
        assert r.training.warmup_ratio == 0.05 and r.training.bf16 and r.model.pooling == "mean"


def test_round_trip_through_yaml(tmp_path):
    recipe = load_recipe({"training": {"max_steps": 7}, "data": {"mix": [{"train": "a.jsonl"}]}})
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    assert load_recipe(path) == recipe


def test_model_unpadded_has_moved_with_one_clear_error(tmp_path):
    """The packed forward is set per stage now (training, index, eval), as precision is; an old recipe is told
    where the key went, whether it comes from the file or from --set."""
    with pytest.raises(EmbedkitError, match="model.unpadded has moved: set training.packed, index.packed and "
                                            "eval.packed"):
        load_recipe({"model": {"unpadded": "off"}})
    with pytest.raises(EmbedkitError, match="model.unpadded has moved"):
        load_recipe({}, ["model.unpadded=off"])
    recipe = load_recipe({"training": {"packed": "off"}, "index": {"packed": "on"}})
    assert (recipe.training.packed, recipe.index.packed, recipe.eval.packed) == ("off", "on", "auto")
    with pytest.raises(EmbedkitError, match="index.packed: 'yes' is not one of 'auto', 'on', 'off'"):
        load_recipe({"index": {"packed": "yes"}})
