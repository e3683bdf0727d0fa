"""The keys saved results are found by: pinned, so that a change to the formula (or to what it hashes) is a
deliberate one. A changed key makes every saved result look stale and every cached evaluation index unused."""

from dataclasses import replace

from embedkit.artifacts import settings_key
from embedkit.config import EvalOptions, IndexSettings, RetrieveConfig
from embedkit.evaluate.runner import cache_tag
from embedkit.evaluate.settings import run_settings
from embedkit.index.build import index_settings


def test_results_keys_are_the_ones_saved_results_carry():
    plain = run_settings("bm25", EvalOptions(), None, None, "title+text")
    assert settings_key(plain) == "ff63b25dc540a3dc"
    tuned = run_settings("bm25", EvalOptions(k=10, retrieve=RetrieveConfig(fuse_with=["x"])), {"mldr_setting": "id"},
                         IndexSettings(backend="hnsw"), "text")
    assert settings_key(tuned) == "4085596ac05366cb"


def test_report_stamp_and_eval_cache_keys_are_unchanged():
    assert settings_key([[("a.json", 10, 123)], "ndcg@10"]) == "b9fa67fdabc7f3ac"  # the report stage's stamp
    build = replace(IndexSettings(), keep_shards=False)  # what evaluation builds its cached index with
    assert cache_tag(build, "dense", None) == "14e8d65e"
    assert cache_tag(replace(build, max_length=64, truncate_dim=32), "dense", 128).endswith("-len64-dim32")


def test_the_packed_forward_is_in_no_key():
    """packed changes how vectors are computed, not which: no index, cached index or result goes stale."""
    off = EvalOptions(packed="off")
    assert run_settings("bm25", off, None, IndexSettings(packed="off")) == run_settings("bm25", EvalOptions())
    build = replace(IndexSettings(), keep_shards=False)
    assert cache_tag(replace(build, packed="on"), "dense", None) == cache_tag(build, "dense", None)
    assert index_settings(IndexSettings(packed="off")) == index_settings(IndexSettings())
    assert "packed" not in index_settings(IndexSettings())


def test_the_precision_evaluation_encodes_with_is_in_the_key():
    """eval.precision (--precision) decides the vectors evaluation scores; a bf16 result is not an fp32 one.
    (The key used to record the index section's precision, which evaluation does not read.)"""
    fp32 = settings_key(run_settings("bm25", EvalOptions()))
    assert settings_key(run_settings("bm25", EvalOptions(precision="bf16"))) != fp32
    assert settings_key(run_settings("bm25", EvalOptions(), None, IndexSettings(precision="bf16"))) == fp32
