"""`embedkit eval` with fusion: the method is named in the results, weighted fusion weights are chosen on a
dev split and only the other queries are scored."""

from __future__ import annotations

import json

import pytest

from embedkit.config import RetrieveConfig
from embedkit.evaluate.runner import EvalOptions, evaluate
from embedkit.retrieve.fusion import split_queries


@pytest.mark.slow
def test_eval_rrf_and_dev_tuned_weighted_fusion(tiny_modernbert, code_beir):
    # the dense index is built once for the three runs (in the test's own EMBEDKIT_CACHE)
    plain = evaluate(str(tiny_modernbert), code_beir, EvalOptions(batch_size=32))
    assert "method" not in plain and plain["num_queries"] == 200
    options = EvalOptions(batch_size=32, retrieve=RetrieveConfig(fuse_with=["bm25"]))
    rrf = evaluate(str(tiny_modernbert), code_beir, options)
    assert rrf["method"] == "rrf(dense,bm25)" and rrf["num_queries"] == 200
    assert [p["method"] for p in rrf["retriever"]["parts"]] == ["dense", "bm25"]
    options.retrieve = RetrieveConfig(fuse_with=["bm25"], fusion="weighted")
    tuned = evaluate(str(tiny_modernbert), code_beir, options)
    _, test_ids = split_queries([f"q{i}" for i in range(200)])
    assert tuned["method"] == "weighted(dense,bm25)"
    assert tuned["num_queries"] == len(test_ids) < 200
    assert len(tuned["chosen_weights"]) == 2 and abs(sum(tuned["chosen_weights"]) - 1) < 1e-9
    # a random tiny encoder is far behind BM25 on real code: the dev split gives BM25 the larger weight
    assert tuned["chosen_weights"][1] > tuned["chosen_weights"][0]


def test_eval_cli_reports_the_method(tiny_modernbert, code_beir, capsys):
    from embedkit.cli import main

    assert main(["eval", "--model", "bm25", "--data", str(code_beir), "--no-cache", "--fuse-with", "bm25",
                 "--fusion", "weighted", "--weights", "0.5", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "weighted(bm25,bm25)" and out["num_queries"] == 200
