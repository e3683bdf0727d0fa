from pathlib import Path

import pytest

from embedkit.config import Recipe, recipe_keys
from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe, recipe_from_dict

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_defaults_validate():
    recipe = recipe_from_dict({})
    assert isinstance(recipe, Recipe)
    assert recipe.kind == "dense" and recipe.loss.name == "mnrl"


def test_unknown_key_names_valid_ones():
    with pytest.raises(EmbedkitError) as err:
        recipe_from_dict({"training": {"learnin_rate": 1e-4}})
    message = str(err.value)
    assert "training.learnin_rate" in message and "learning_rate" in message and "batch_size" in message


def test_unknown_top_level_key():
    with pytest.raises(EmbedkitError, match="unknown key modle; valid keys: kind, output_dir, model"):
        recipe_from_dict({"modle": {}})


@pytest.mark.parametrize("raw, field", [
    ({"training": {"batch_size": "many"}}, "training.batch_size"),
    ({"training": {"bf16": "yes"}}, "training.bf16"),
    ({"kind": "splade"}, "kind"),
    ({"eval": {"data": {"a": 1}}}, "eval.data"),
])
def test_wrong_types_name_the_field(raw, field):
    with pytest.raises(EmbedkitError, match=field.replace(".", r"\.")):
        recipe_from_dict(raw)


def test_set_overrides_parse_values_and_are_validated():
    recipe = recipe_from_dict({"training": {"learning_rate": 1e-4}},
                              ["training.learning_rate=5e-5", "eval.data=[a, b]", "model.name=x/y"])
    assert recipe.training.learning_rate == pytest.approx(5e-5)
    assert recipe.eval.data == ["a", "b"] and recipe.model.name == "x/y"
    with pytest.raises(EmbedkitError, match="unknown key training.lr"):
        recipe_from_dict({}, ["training.lr=1"])


def test_loss_must_match_kind():
    with pytest.raises(EmbedkitError, match="not a dense loss"):
        recipe_from_dict({"loss": {"name": "contrastive"}})
    assert recipe_from_dict({"kind": "colbert", "loss": {"name": "contrastive"}}).kind == "colbert"


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
    base = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "modernbert-base-dpr-msmarco.yaml")
    large = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "modernbert-large-dpr-msmarco.yaml")
    assert (base.training.learning_rate, large.training.learning_rate) == (8e-5, 1e-4)
    for r in (base, large):
        assert r.data.subset == "triplet-hard" and r.data.max_samples == 1_250_000
        assert r.loss.name == "cached_mnrl" and r.training.batch_size == 512  # negatives shared over 512 rows
        assert r.training.warmup_ratio == 0.05 and r.training.bf16 and r.model.pooling == "mean"


def test_round_trip_through_yaml(tmp_path):
    recipe = recipe_from_dict({"training": {"max_steps": 7}, "data": {"mix": [{"train": "a.jsonl"}]}})
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    assert load_recipe(path) == recipe


def test_every_key_documented():
    rows = recipe_keys()
    keys = {row[0] for row in rows}
    assert {"kind", "model.name", "model.max_seq_length", "data.train", "loss.name", "loss.mini_batch_size",
            "training.learning_rate", "training.batch_size", "training.epochs", "training.max_steps",
            "training.warmup_ratio", "training.bf16", "training.seed", "eval.data", "output_dir"} <= keys
    assert all(row[3] for row in rows)


def test_recipe_reference_page_lists_every_key():
    page = (Path(__file__).resolve().parents[1] / "docs" / "reference" / "recipe.md").read_text(encoding="utf-8")
    missing = [key for key, *_ in recipe_keys() if f"| `{key}` |" not in page]
    assert not missing, f"docs/reference/recipe.md lacks {missing}"


def test_recipe_reference_page_is_the_generated_one():
    from embedkit.config import reference_page

    page = (Path(__file__).resolve().parents[1] / "docs" / "reference" / "recipe.md").read_text(encoding="utf-8")
    assert page == reference_page(), "docs/reference/recipe.md is stale: run `make reference`"


def test_training_settings_ignore_what_training_does_not_read():
    from embedkit.config import setting_differences, training_settings

    base = recipe_from_dict({"data": {"train": "t.jsonl"}})
    other = recipe_from_dict({"data": {"train": "t.jsonl"}, "output_dir": "elsewhere",
                              "index": {"backend": "hnsw"}, "eval": {"k": 10, "batch_size": 8, "data": ["x"]},
                              "report": {"metric": "mrr@10"}})
    assert setting_differences(training_settings(base), training_settings(other)) == []
    tuned = recipe_from_dict({"data": {"train": "t.jsonl"}, "training": {"learning_rate": 5e-5}})
    assert setting_differences(training_settings(base), training_settings(tuned)) == [
        "training.learning_rate: 8.0e-05 -> 5.0e-05"]
    during = recipe_from_dict({"data": {"train": "t.jsonl"}, "eval": {"during_training": "dev", "batch_size": 8}})
    assert "eval.batch_size: null -> 8" in setting_differences(training_settings(base), training_settings(during))


def test_relative_outputs_go_in_the_run_folder_and_absolute_ones_stay():
    from embedkit.config import run_folder, with_run_paths

    recipe = recipe_from_dict({"output_dir": "runs/m", "index": {"output_dir": "/abs/index"},
                               "report": {"output_dir": "figures"}})
    placed = with_run_paths(recipe)
    assert run_folder(recipe) == Path("runs/m-run")
    assert (placed.index.output_dir, placed.eval.output_dir, placed.report.output_dir) == (
        "/abs/index", str(Path("runs/m-run/eval")), str(Path("runs/m-run/figures")))


def test_model_unpadded_has_moved_with_one_clear_error(tmp_path):
    """The packed forward is set per stage now (training, index, eval), as precision is; an old recipe is told
    where the key went, whether it comes from the file or from --set."""
    with pytest.raises(EmbedkitError, match="model.unpadded has moved: set training.packed, index.packed and "
                                            "eval.packed"):
        recipe_from_dict({"model": {"unpadded": "off"}})
    with pytest.raises(EmbedkitError, match="model.unpadded has moved"):
        recipe_from_dict({}, ["model.unpadded=off"])
    recipe = recipe_from_dict({"training": {"packed": "off"}, "index": {"packed": "on"}})
    assert (recipe.training.packed, recipe.index.packed, recipe.eval.packed) == ("off", "on", "auto")
    with pytest.raises(EmbedkitError, match="index.packed: 'yes' is not one of 'auto', 'on', 'off'"):
        recipe_from_dict({"index": {"packed": "yes"}})


def test_a_model_trained_before_the_move_is_still_the_same_model():
    """A model folder saved before the move records model.unpadded: read as training.packed, an unchanged
    recipe finds no difference, and a changed forward is named by its new key."""
    from embedkit.config import setting_differences, training_settings

    saved = recipe_from_dict({}).to_dict()
    saved["model"]["unpadded"] = saved["training"].pop("packed")
    assert setting_differences(training_settings(saved), training_settings(recipe_from_dict({}))) == []
    changed = recipe_from_dict({"training": {"packed": "off"}})
    assert setting_differences(training_settings(saved), training_settings(changed)) == [
        "training.packed: auto -> 'off'"]
