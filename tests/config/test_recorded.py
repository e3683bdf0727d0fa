"""The settings that decide a trained model, and how two recipes' settings differ."""

import pytest

from embedkit.train.recipes import load_recipe


def test_training_settings_ignore_what_training_does_not_read():
    from embedkit.config import setting_differences, training_settings

    base = load_recipe({"data": {"train": "t.jsonl"}})
    other = load_recipe({"data": {"train": "t.jsonl"}, "output_dir": "elsewhere",
                         "index": {"backend": "hnsw"}, "eval": {"k": 10, "batch_size": 8, "data": ["x"]},
                         "report": {"metric": "mrr@10"}})
    assert setting_differences(training_settings(base), training_settings(other)) == []
    tuned = load_recipe({"data": {"train": "t.jsonl"}, "training": {"learning_rate": 5e-5}})
    assert setting_differences(training_settings(base), training_settings(tuned)) == [
        "training.learning_rate: 8.0e-05 -> 5.0e-05"]
    during = load_recipe({"data": {"train": "t.jsonl"}, "eval": {"during_training": "dev", "batch_size": 8}})
    assert "eval.batch_size: null -> 8" in setting_differences(training_settings(base), training_settings(during))


@pytest.mark.parametrize("old_section", ["model", "training"])
def test_a_model_trained_before_the_move_is_still_the_same_model(old_section):
    """A model folder saved before the move records model.unpadded, one saved before the rename
    training.unpadded: either is read as training.packed, an unchanged recipe finds no difference, and a changed
    forward is named by its new key."""
    from embedkit.config import setting_differences, training_settings

    saved = load_recipe({}).to_dict()
    saved[old_section]["unpadded"] = saved["training"].pop("packed")
    assert setting_differences(training_settings(saved), training_settings(load_recipe({}))) == []
    changed = load_recipe({"training": {"packed": "off"}})
    assert setting_differences(training_settings(saved), training_settings(changed)) == [
        "training.packed: auto -> 'off'"]
