import math

import pytest

from embedkit.evaluate.metrics import drop_self_hits, evaluate_run, top_k, write_trec_run


def dcg(gains):
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_hand_computed_values():
    qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}}
    run = {"q1": {"x": 3.0, "b": 2.0, "y": 1.5, "a": 1.0},   # b at rank 2, a at rank 4
           "q2": {"z": 1.0}}                                 # nothing relevant retrieved
    result = evaluate_run(qrels, run)
    ndcg_q1 = dcg([0, 2, 0, 1]) / dcg([2, 1])
    assert result["ndcg@10"] == pytest.approx(ndcg_q1 / 2)
    assert result["mrr@10"] == pytest.approx((1 / 2 + 0) / 2)
    assert result["recall@100"] == pytest.approx((1.0 + 0.0) / 2)
    assert result["map@100"] == pytest.approx(((1 / 2 + 2 / 4) / 2 + 0) / 2)


def test_queries_missing_from_run_count_as_zero():
    result = evaluate_run({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": {"a": 1.0}})
    assert result["ndcg@10"] == pytest.approx(0.5)


def test_mrr_is_cut_at_ten():
    run = {"q": {f"d{i}": 100.0 - i for i in range(20)}}
    assert evaluate_run({"q": {"d10": 1}}, run)["mrr@10"] == 0.0
    assert evaluate_run({"q": {"d9": 1}}, run)["mrr@10"] == pytest.approx(0.1)


def test_self_hits_are_dropped():
    run = {"q1": {"q1": 9.0, "a": 1.0}, "q2": {"b": 2.0}}
    assert drop_self_hits(run) == {"q1": {"a": 1.0}, "q2": {"b": 2.0}}


def test_top_k_and_trec_file(tmp_path):
    run = {"q": {"a": 1.0, "b": 3.0, "c": 2.0}}
    assert list(top_k(run, 2)["q"]) == ["b", "c"]
    path = tmp_path / "run.trec"
    write_trec_run(run, path)
    assert path.read_text().splitlines()[0] == "q Q0 b 1 3.000000 embedkit"


def test_per_query_scores():
    result = evaluate_run({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": {"a": 1.0}, "q2": {"c": 1.0}}, per_query=True)
    assert result["per_query"]["ndcg@10"] == {"q1": 1.0, "q2": 0.0}


def test_self_hit_protocols():
    from embedkit.errors import EmbedkitError
    from embedkit.evaluate.metrics import apply_self_hit_policy, drops_self_hits

    run = {"q1": {"q1": 9.0, "a": 2.0, "b": 1.0}, "q2": {"c": 1.0}}
    beir, info = apply_self_hit_policy(run, "beir", "beir/scifact", k=2)
    assert beir == {"q1": {"a": 2.0, "b": 1.0}, "q2": {"c": 1.0}}
    assert info == {"protocol": "beir", "dropped": True, "queries_with_self_hit": 1}
    mteb, info = apply_self_hit_policy(run, "mteb", "beir/scifact", k=2)
    assert mteb == {"q1": {"q1": 9.0, "a": 2.0}, "q2": {"c": 1.0}} and not info["dropped"]
    assert all(drops_self_hits("mteb", name) for name in ("beir/arguana", "beir/quora", "arguana", "beir/fiqa"))
    assert not drops_self_hits("mteb", "csn/python")
    with pytest.raises(EmbedkitError, match="protocol must be one of beir, mteb"):
        drops_self_hits("pylate", "beir/scifact")
