"""Is this model current? (embedkit.train.current.model_currency) under each policy: ``embedkit train`` and the
train stage refuse a model trained otherwise, a run whose train stage is left out keeps it (skip)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest

from embedkit.artifacts import Policy
from embedkit.config import Recipe, TrainingConfig
from embedkit.errors import EmbedkitError
from embedkit.train.current import model_currency
from embedkit.train.run import MANIFEST


@pytest.fixture()
def trained(tmp_path) -> Recipe:
    """A recipe and a folder whose manifest says it trained it (what train() writes: the recipe's dict)."""
    recipe = Recipe(output_dir=str(tmp_path / "model"), training=TrainingConfig(learning_rate=2e-3))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / MANIFEST).write_text(json.dumps({"kind": "dense", "recipe": recipe.to_dict()}))
    return recipe


def test_absent_current_and_the_training_keys_that_differ(trained, tmp_path):
    assert model_currency(replace(trained, output_dir=str(tmp_path / "none"))).absent
    assert model_currency(trained).current
    assert model_currency(replace(trained, index=replace(trained.index, corpus="x.jsonl"))).current  # not training
    other = replace(trained, training=TrainingConfig(learning_rate=1e-3))
    assert model_currency(other).differences == ("training.learning_rate: 0.002 -> 0.001",)


@pytest.mark.parametrize("policy", list(Policy))
def test_each_policy_on_a_model_trained_otherwise(trained, caplog, policy):
    other = model_currency(replace(trained, training=TrainingConfig(learning_rate=1e-3)))
    assert not model_currency(trained).must_make(policy)  # current: kept
    if policy is Policy.REFUSE:
        with pytest.raises(EmbedkitError, match=r"holds a model trained with other settings \(training.learning_rate: "
                                                r"0.002 -> 0.001\); pass --overwrite to train again"):
            other.must_make(policy)
        assert other.must_make(policy, overwrite=True)
        return
    with caplog.at_level(logging.INFO, logger="embedkit"):
        assert other.must_make(policy, then="next") is (policy is Policy.REBUILD)
    assert "training.learning_rate: 0.002 -> 0.001" in caplog.text


def test_a_folder_embedkit_did_not_train_is_never_current(tmp_path):
    (tmp_path / "model").mkdir()
    currency = model_currency(Recipe(output_dir=str(tmp_path / "model")))
    assert not currency.absent and not currency.current
    with pytest.raises(EmbedkitError, match=f"holds no model embedkit trained \\(no {MANIFEST}\\); --overwrite "
                                            "replaces only those"):
        currency.must_make(Policy.REFUSE)
