"""The examples in docstrings are run, so they stay true."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["embedkit.config", "embedkit.cli_fields", "embedkit.evaluate.metrics",
                                    "embedkit.data.benchmarks", "embedkit.evaluate.settings"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted and not result.failed
