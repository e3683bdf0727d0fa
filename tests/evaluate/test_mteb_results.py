"""`embedkit eval --mteb-results DIR`: MTEB's result files, loaded back with mteb's own API."""

from __future__ import annotations

import json

import mteb
import pytest

from embedkit.cli import main
from embedkit.evaluate.mteb_results import write_mteb_results


def _load(folder, model: str, task: str):
    results = mteb.ResultCache(folder).load_results(models=[model], tasks=[task], require_model_meta=False,
                                                    include_remote=False)
    [model_result] = results.model_results
    [task_result] = model_result.task_results
    return model_result, task_result


def test_mteb_loads_the_written_files_with_the_same_ndcg(tmp_path, code_beir, caplog):
    folder = tmp_path / "mteb"
    assert main(["eval", "--model", "bm25", "--benchmark", "csn/python", "--data", str(code_beir), "--protocol",
                 "mteb", "--output-dir", str(tmp_path / "res"), "--mteb-results", str(folder)]) == 0
    ours = json.loads((tmp_path / "res" / "bm25" / "csn__python.json").read_text())
    model_result, task_result = _load(folder, "bm25", "COIRCodeSearchNetRetrieval")
    assert model_result.model_name == "bm25" and task_result.task_name == "COIRCodeSearchNetRetrieval"
    [scores] = task_result.scores["test"]
    assert scores["hf_subset"] == "python" and scores["languages"] == ["python-Code"]
    assert task_result.get_score() == pytest.approx(ours["ndcg@10"], abs=1e-6)  # main score: nDCG@10
    assert scores["recall_at_100"] == pytest.approx(ours["recall@100"], abs=1e-6)


def test_hub_names_and_sets_without_an_mteb_task(tmp_path, caplog):
    result = {"dataset": "beir/scifact", "model_name": "org/model", "split": "test", "protocol": "beir",
              "ndcg@10": 0.61234567, "mrr@10": 0.5, "recall@100": 0.9, "map@100": 0.55, "k": 100,
              "settings": {"model_fingerprint": "abcdef0123456789ffff"}, "seconds": {"search": 1.5}}
    own_folder = dict(result, dataset="my-folder")
    written = write_mteb_results([result, own_folder], tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "results/org__model/abcdef0123456789/SciFact.json"]
    assert "beir protocol" in caplog.text and "no MTEB task for my-folder" in caplog.text
    model_result, task_result = _load(tmp_path, "org/model", "SciFact")
    assert model_result.model_revision == "abcdef0123456789"
    assert task_result.get_score() == pytest.approx(0.612346) and task_result.evaluation_time == 1.5
