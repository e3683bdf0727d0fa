"""Fixtures of the data tests."""

import pytest

from tests.helpers import write_hub_repo


@pytest.fixture()
def make_hub_repo():
    """The hub dataset repository writer (parquet configs declared in README.md)."""
    return write_hub_repo
