"""The recipe reference: every key documented, and docs/reference/recipe.md the generated page."""

from pathlib import Path

from embedkit.config import recipe_keys


def test_every_key_documented():
    rows = recipe_keys()
    keys = {row[0] for row in rows}
    assert {"kind", "model.name", "model.max_seq_length", "data.train", "loss.name", "loss.mini_batch_size",
            "training.learning_rate", "training.batch_size", "training.epochs", "training.max_steps",
            "training.warmup_ratio", "training.bf16", "training.seed", "eval.data", "output_dir"} <= keys
    assert all(row[3] for row in rows)


def test_recipe_reference_page_lists_every_key():
    page = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "recipe.md").read_text(encoding="utf-8")
    missing = [key for key, *_ in recipe_keys() if f"| `{key}` |" not in page]
    assert not missing, f"docs/reference/recipe.md lacks {missing}"


def test_recipe_reference_page_is_the_generated_one():
    from embedkit.config import reference_page

    page = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "recipe.md").read_text(encoding="utf-8")
    assert page == reference_page(), "docs/reference/recipe.md is stale: run `make reference`"
