"""The base both colbert backends share: query padding, and no PLAID import for the exact backend."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from embedkit.index.maxsim import maxsim_scores
from embedkit.index.multivector import pad_queries


def test_padding_adds_nothing_to_maxsim():
    rng = np.random.default_rng(0)
    queries = [rng.normal(size=(n, 4)).astype(np.float32) for n in (3, 1, 5)]
    tokens = rng.normal(size=(7, 4)).astype(np.float32)
    lengths = np.array([2, 4, 1])
    padded = pad_queries(queries)
    assert padded.shape == (3, 5, 4)
    for i, q in enumerate(queries):
        np.testing.assert_allclose(maxsim_scores(padded[i:i + 1], tokens, lengths),
                                   maxsim_scores(q[None], tokens, lengths), rtol=1e-6)


def test_the_exact_backend_does_not_import_plaid():
    code = ("import sys, embedkit.index.exact_index\n"
            "print(sorted(m for m in ('embedkit.index.plaid_index', 'fast_plaid') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
