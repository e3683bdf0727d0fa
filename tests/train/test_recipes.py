"""The one entry point for recipes: a file and a mapping load to the same complete recipe, errors name their
source, and nothing the caller passed is changed."""

import copy

import pytest
import yaml

from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe


def test_a_file_and_its_mapping_load_to_the_same_complete_recipe(tmp_path):
    raw = {"kind": "sparse", "training": {"max_steps": 3}}
    before = copy.deepcopy(raw)
    path = tmp_path / "sparse.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    from_mapping = load_recipe(raw, ["training.seed=7"])
    assert from_mapping == load_recipe(path, ["training.seed=7"]) == load_recipe(str(path), ["training.seed=7"])
    assert from_mapping.loss.name == "splade" and from_mapping.training.seed == 7  # complete: the kind's loss
    assert raw == before


def test_errors_name_the_file_the_mapping_or_the_given_source(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("loss:\n  name: splade\n", encoding="utf-8")
    with pytest.raises(EmbedkitError, match=rf"^{path}: loss\.name: 'splade' is not a dense loss"):
        load_recipe(path)
    with pytest.raises(EmbedkitError, match=r"^recipe: loss\.name: 'splade' is not a dense loss"):
        load_recipe({"loss": {"name": "splade"}})
    with pytest.raises(EmbedkitError, match=r"^mine\.yaml: unknown key trainig"):
        load_recipe({"trainig": {}}, source="mine.yaml")
