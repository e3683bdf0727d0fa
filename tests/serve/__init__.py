"""Tests of embedkit.serve (a package, so its conftest and module names do not clash with the others)."""
