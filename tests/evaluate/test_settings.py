"""The keys saved results are found by: pinned, so that a change to the formula (or to what it hashes) is a
deliberate one. A changed key makes every saved result look stale and every cached evaluation index unused."""

from dataclasses import asdict, replace

from embedkit.artifacts import settings_key
from embedkit.config import EvalOptions, IndexSettings, RetrieveConfig
from embedkit.evaluate.settings import run_settings


def test_results_keys_are_the_ones_saved_results_carry():
    plain = run_settings("bm25", EvalOptions(), None, None, "title+text")
    assert settings_key(plain) == "ff63b25dc540a3dc"
    tuned = run_settings("bm25", EvalOptions(k=10, retrieve=RetrieveConfig(fuse_with=["x"])), {"mldr_setting": "id"},
                         IndexSettings(backend="hnsw"), "text")
    assert settings_key(tuned) == "4085596ac05366cb"


def test_report_stamp_and_eval_cache_keys_are_unchanged():
    assert settings_key([[("a.json", 10, 123)], "ndcg@10"]) == "b9fa67fdabc7f3ac"  # the report stage's stamp
    build = replace(IndexSettings(), keep_shards=False)  # what evaluation builds its cached index with
    assert settings_key([asdict(build), "dense", None, 3], length=8) == "14e8d65e"
