"""Input paths are checked before any work: a missing local path is named as such first, then, when the
string could also be a Hub id, why the Hub could not supply it."""

from __future__ import annotations

import pytest

from embedkit.data.inputs import check_local, check_local_or_hub
from embedkit.errors import EmbedkitError


def test_existing_local_paths_pass(tmp_path):
    (tmp_path / "corpus.jsonl").write_text("")
    check_local_or_hub(str(tmp_path / "corpus.jsonl"), "--corpus", "dataset")
    assert check_local(str(tmp_path), "--data", "folder") == tmp_path
    with pytest.raises(EmbedkitError, match="--data: .*corpus.jsonl is a file; a folder is expected here"):
        check_local(str(tmp_path / "corpus.jsonl"), "--data", "folder")


def test_a_path_that_cannot_be_a_hub_id_is_only_a_missing_path(tmp_path):
    for value in ("corpus.jsonl", "./data/corpus", "runs/a/b", str(tmp_path / "nothere")):
        with pytest.raises(EmbedkitError) as excinfo:
            check_local_or_hub(value, "--corpus", "dataset")
        assert str(excinfo.value) == f"--corpus: no such local path: {value}"


def test_hub_shaped_path_offline_says_both(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    with pytest.raises(EmbedkitError, match=r"^index.corpus: no such local path: data/corpus; read as a Hugging "
                                            r"Face dataset id, the Hub could not be asked \(HF_HUB_OFFLINE is set\)"):
        check_local_or_hub("data/corpus", "index.corpus", "dataset")
    # what the cache holds can be loaded offline: no error
    (tmp_path / "hub" / "models--owner--model").mkdir(parents=True)
    check_local_or_hub("owner/model", "model.name", "model")
    (tmp_path / "datasets" / "owner___prepared").mkdir(parents=True)
    check_local_or_hub("owner/prepared", "data.train", "dataset")


def test_unreachable_hub_is_reported_in_seconds(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(EmbedkitError, match=r"--model: no such local path: org/modle; read as a Hugging Face model "
                                            r"id, the Hub could not be asked \(http://127\.0\.0\.1:9"):
        check_local_or_hub("org/modle", "--model", "model")


def test_a_name_the_hub_does_not_know(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    class NotFound(RepositoryNotFoundError):  # the client's 404, without an HTTP response to build it from
        def __init__(self, message):
            Exception.__init__(self, message)

    def not_found(self, repo_id, **kwargs):
        raise NotFound(f"{repo_id} not found")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", not_found)
    with pytest.raises(EmbedkitError, match="the Hub has no dataset of that name"):
        check_local_or_hub("data/corpus", "index.corpus", "dataset")
