"""Defaults that fit the kind and the model: a minimal recipe (kind, model, data, training) of either kind
trains, with the kind's loss and the model's own maximum length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from embedkit.config import ModelConfig
from embedkit.errors import EmbedkitError
from embedkit.train.recipes import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_loss_defaults_to_the_kinds():
    assert load_recipe({}).loss.name == "mnrl"
    assert load_recipe({"kind": "colbert"}).loss.name == "contrastive"
    assert load_recipe({"kind": "colbert", "data": {"format": "distillation"}}).loss.name == "distillation"
    # the resolved name is what the model card and the resume check see
    assert yaml.safe_load(load_recipe({"kind": "colbert"}).to_yaml())["loss"]["name"] == "contrastive"


@pytest.mark.parametrize("raw, message", [
    ({"kind": "colbert", "loss": {"name": "mnrl"}}, "'mnrl' is not a colbert loss; use one of contrastive"),
    ({"loss": {"name": "nope"}}, "'nope' is not a dense loss; use one of mnrl, cached_mnrl"),
    ({"data": {"format": "distillation"}}, "'distillation' is not a dense loss"),
    ({"kind": "colbert", "loss": {"name": "contrastive"}, "data": {"format": "distillation"}},
     "contrastive trains on data.format: pairs, not distillation"),
    ({"kind": "colbert", "loss": {"name": "distillation"}}, "distillation trains on data.format: distillation"),
    ({"model": {"max_seq_length": 0}}, "model.max_seq_length: must be at least 1"),
])
def test_loss_and_length_mistakes_name_the_key(raw, message):
    with pytest.raises(EmbedkitError, match=message):
        load_recipe(raw)


def test_max_seq_length_null_keeps_what_the_model_ships(minilm_path, tiny_modernbert):
    from embedkit.models.dense import build_dense_model

    assert build_dense_model(ModelConfig(name=minilm_path), device="cpu").max_seq_length == 256
    assert build_dense_model(ModelConfig(name=minilm_path, max_seq_length=64), device="cpu").max_seq_length == 64
    # a raw backbone: its own limit (the tiny ModernBERT, like ModernBERT, allows 8192)
    assert build_dense_model(ModelConfig(name=str(tiny_modernbert)), device="cpu").max_seq_length == 8192


@pytest.mark.parametrize("path", sorted(RECIPES.glob("modernbert-*-dpr-*.yaml")), ids=lambda p: p.name)
def test_modernbert_dense_recipes_set_their_length(path):
    """ModernBERT allows 8192 tokens; the paper's DPR setting trains at 512, so the recipes say so."""
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["model"]["max_seq_length"] == 512


@pytest.fixture()
def pairs(tmp_path, code_pairs) -> Path:
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for p in code_pairs[300:316]:
            f.write(json.dumps({"query": p.query, "positive": p.code}) + "\n")
    return path


def _minimal(kind: str, model: str, data: Path, out: Path):
    """kind, model, data, training: nothing else (no loss, no lengths, no colbert section)."""
    return load_recipe({"kind": kind, "output_dir": str(out), "model": {"name": model},
                        "data": {"train": str(data)},
                        "training": {"batch_size": 4, "max_steps": 2, "save_steps": 1000}})


KINDS = ["dense", pytest.param("colbert", marks=pytest.mark.colbert), "sparse"]


@pytest.mark.slow  # four short trainings, two of them of the 22M-parameter MiniLM
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backbone", ["tiny_modernbert", "minilm_path"])
def test_minimal_recipe_trains(kind, backbone, request, pairs, tmp_path):
    from embedkit.index.build import detect_kind
    from embedkit.train.run import train

    model = str(request.getfixturevalue(backbone))
    out = train(_minimal(kind, model, pairs, tmp_path / "model"))
    manifest = json.loads((out / "embedkit.json").read_text())
    assert manifest["recipe"]["loss"]["name"] == {"dense": "mnrl", "colbert": "contrastive", "sparse": "splade"}[kind]
    assert detect_kind(str(out)) == kind
    if kind == "dense":
        from sentence_transformers import SentenceTransformer

        expected = 256 if backbone == "minilm_path" else 8192  # what the model ships with, untouched
        assert SentenceTransformer(str(out), device="cpu").max_seq_length == expected


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_main_process_saves(kind, tiny_modernbert, pairs, tmp_path, monkeypatch):
    """Under torchrun every rank runs the driver; the others must not write the model into the shared folder."""
    from embedkit.train.run import KINDS, fit

    parts = KINDS[kind]
    trainer_classes = parts.trainer_classes  # the kind's (and ColBERT library's) trainer

    def other_rank(model):
        trainer, arguments = trainer_classes(model)

        class OtherRank(trainer):
            def is_world_process_zero(self) -> bool:
                return False

        return OtherRank, arguments

    monkeypatch.setattr(parts, "trainer_classes", other_rank)
    recipe = _minimal(kind, str(tiny_modernbert), pairs, tmp_path / "model")
    recipe.training.max_steps = 1
    work = tmp_path / "work"
    _model, history = fit(recipe, work)
    assert history  # it trained
    assert [f for f in ("modules.json", "model.safetensors", "config.json") if (work / f).exists()] == []
