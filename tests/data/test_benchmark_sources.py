"""Benchmark loaders on miniature copies of each source's real layout, built here, no network."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import zipfile
from pathlib import Path

import pytest

from embedkit.data import benchmark_sources as sources
from embedkit.data.benchmarks import BENCHMARKS, CQADUPSTACK_FORUMS, get_benchmark
from embedkit.errors import EmbedkitError


def _beir_files(prefix: str, n_docs: int = 3, split: str = "test") -> dict[str, str]:
    corpus = "".join(json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"doc {i} of {prefix}"}) + "\n"
                     for i in range(n_docs))
    queries = "".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n" for i in range(n_docs))
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(n_docs))
    return {f"{prefix}/corpus.jsonl": corpus, f"{prefix}/queries.jsonl": queries, f"{prefix}/qrels/{split}.tsv": qrels}


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


# ---------------------------------------------------------------------------- BEIR zips


def test_beir_zip_is_downloaded_converted_and_cached(tmp_path, caplog):
    archive = _zip(tmp_path / "scifact.zip", _beir_files("scifact"))
    entry = dataclasses.replace(get_benchmark("beir/scifact"), source=archive.as_uri())
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING):
        folder = sources.materialize(entry, cache)
    assert folder == cache / "beir" / "scifact"
    assert (folder / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    assert json.loads((folder / "corpus.jsonl").read_text().splitlines()[0])["_id"] == "d0"
    manifest = json.loads((folder / "benchmark.json").read_text())
    assert manifest["benchmark"] == "beir/scifact" and manifest["published_md5"] == entry.md5
    assert "differs from the published" in caplog.text  # our zip is not the real one
    assert not (cache / "_downloads" / "scifact.zip").exists()  # the zip is dropped once unpacked
    archive.unlink()  # a second call must not need the source any more
    assert sources.materialize(entry, cache) == folder
    from embedkit.data import beir

    data = beir.load_beir(folder, "test")
    assert set(data.queries) == {"q0", "q1", "q2"} and data.qrels["q1"] == {"d1": 1}


def test_msmarco_scores_its_dev_split(tmp_path):
    archive = _zip(tmp_path / "msmarco.zip", _beir_files("msmarco", split="dev"))
    entry = dataclasses.replace(get_benchmark("beir/msmarco"), source=archive.as_uri())
    assert entry.split == "dev"
    folder = sources.materialize(entry, tmp_path / "cache")
    assert (folder / "qrels" / "dev.tsv").is_file()


def test_cqadupstack_zip_gives_one_folder_per_forum(tmp_path, monkeypatch):
    files: dict[str, str] = {}
    for forum in CQADUPSTACK_FORUMS:
        files.update(_beir_files(f"cqadupstack/{forum}", n_docs=2))
    archive = _zip(tmp_path / "cqadupstack.zip", files)
    # Every forum entry shares the aggregate's source; point them all at the local zip.
    local = {name: dataclasses.replace(entry, source=archive.as_uri())
             for name, entry in BENCHMARKS.items() if name.startswith("beir/cqadupstack")}
    monkeypatch.setattr("embedkit.data.benchmarks.BENCHMARKS", {**BENCHMARKS, **local})
    downloads = []
    real_download = sources._download
    monkeypatch.setattr(sources, "_download", lambda url, dest, **kw: downloads.append(url) or real_download(url, dest))
    pairs = sources.materialize_all(local["beir/cqadupstack"], tmp_path / "cache")
    assert [name for name, _ in pairs] == [f"beir/cqadupstack/{f}" for f in CQADUPSTACK_FORUMS]
    assert all(folder == tmp_path / "cache" / name for name, folder in pairs)
    assert all((folder / "qrels" / "test.tsv").is_file() for _, folder in pairs)
    assert "cqadupstack/tex" in (pairs[8][1] / "corpus.jsonl").read_text()
    assert len(downloads) == 1  # one zip for the twelve forums
    with pytest.raises(EmbedkitError, match="materialize_all"):
        sources.materialize(local["beir/cqadupstack"], tmp_path / "cache")


def test_single_forum_is_a_benchmark_of_its_own(tmp_path):
    files = {**_beir_files("cqadupstack/gis"), **_beir_files("cqadupstack/tex")}
    archive = _zip(tmp_path / "cqadupstack.zip", files)
    entry = dataclasses.replace(get_benchmark("beir/cqadupstack/gis"), source=archive.as_uri())
    assert sources.materialize_all(entry, tmp_path / "c") == [("beir/cqadupstack/gis",
                                                                 tmp_path / "c" / "beir" / "cqadupstack" / "gis")]


def test_zip_without_the_set_is_refused(tmp_path):
    archive = _zip(tmp_path / "fiqa.zip", {"README.txt": "nothing here"})
    entry = dataclasses.replace(get_benchmark("beir/fiqa"), source=archive.as_uri())
    with pytest.raises(EmbedkitError, match="did not provide beir/fiqa in BEIR layout"):
        sources.materialize(entry, tmp_path / "cache")


def test_unreachable_beir_url_fails_fast_with_instructions(tmp_path):
    entry = dataclasses.replace(get_benchmark("beir/nfcorpus"), source="http://127.0.0.1:9/nfcorpus.zip")
    with pytest.raises(EmbedkitError) as excinfo:
        sources.materialize(entry, tmp_path / "cache")
    message = str(excinfo.value)
    assert "'beir/nfcorpus'" in message and "--data path/to/beir-folder" in message
    assert "eval.data=[path/to/beir-folder]" in message  # the recipe's field, for run and sweep
    assert "http://127.0.0.1:9/nfcorpus.zip" in message
    assert not (tmp_path / "cache" / "beir" / "nfcorpus").exists()
    assert not list((tmp_path / "cache" / "_downloads").glob("*"))


def test_incomplete_cached_folder_is_reported(tmp_path):
    folder = tmp_path / "cache" / "beir" / "scifact"
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("")
    with pytest.raises(EmbedkitError, match="not a complete BEIR folder"):
        sources.materialize(get_benchmark("beir/scifact"), tmp_path / "cache")


def test_cache_dir_defaults_to_embedkit_cache(monkeypatch, embedkit_cache):
    assert sources.default_cache_dir() == embedkit_cache / "benchmarks"
    assert sources.benchmark_folder(get_benchmark("csn/go")) == embedkit_cache / "benchmarks" / "csn" / "go"
    monkeypatch.delenv("EMBEDKIT_CACHE")
    assert sources.default_cache_dir() == Path.home() / ".cache" / "embedkit" / "benchmarks"


# ---------------------------------------------------------------------------- MLDR


def _write_jsonl_gz(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


@pytest.fixture()
def mldr_repo(tmp_path) -> Path:
    """Shitao/MLDR's raw files: mldr-v1.0-en/{test,corpus}.jsonl.gz with the card's fields."""
    repo = tmp_path / "MLDR"
    docs = [{"docid": f"doc-en-{i}", "text": f"long article {i} " * 50} for i in range(4)]
    _write_jsonl_gz(repo / "mldr-v1.0-en" / "corpus.jsonl.gz", docs)
    _write_jsonl_gz(repo / "mldr-v1.0-en" / "test.jsonl.gz", [
        {"query_id": "q-en-0", "query": "what is in article 1?",
         "positive_passages": [{"docid": "doc-en-1", "text": docs[1]["text"]}], "negative_passages": []},
        {"query_id": "q-en-1", "query": "what is in article 3?",
         "positive_passages": [{"docid": "doc-en-3", "text": docs[3]["text"]}], "negative_passages": []},
    ])
    return repo


def _check_mldr(folder: Path) -> None:
    assert [json.loads(q)["_id"] for q in (folder / "queries.jsonl").read_text().splitlines()] == ["q-en-0", "q-en-1"]
    assert (folder / "qrels" / "test.tsv").read_text() == "query-id\tcorpus-id\tscore\nq-en-0\tdoc-en-1\t1\n" \
                                                           "q-en-1\tdoc-en-3\t1\n"
    docs = [json.loads(line) for line in (folder / "corpus.jsonl").read_text().splitlines()]
    assert [d["_id"] for d in docs] == [f"doc-en-{i}" for i in range(4)] and docs[0]["title"] == ""


def test_mldr_from_a_local_copy_of_the_repo(tmp_path, mldr_repo):
    entry = dataclasses.replace(get_benchmark("mldr"), source=str(mldr_repo))
    folder = sources.materialize(entry, tmp_path / "cache")
    assert folder == tmp_path / "cache" / "mldr" and entry.max_length == 8192
    _check_mldr(folder)


def test_mldr_through_the_hub_download_call(tmp_path, mldr_repo, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, repo_type=None, revision=None, **kwargs):
        calls.append((repo_id, filename, repo_type))
        return str(mldr_repo / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(sources, "_probe_hub", lambda entry, folder: None)
    _check_mldr(sources.materialize(get_benchmark("mldr"), tmp_path / "cache"))
    assert calls == [("Shitao/MLDR", "mldr-v1.0-en/test.jsonl.gz", "dataset"),
                     ("Shitao/MLDR", "mldr-v1.0-en/corpus.jsonl.gz", "dataset")]


def test_mldr_bad_row_names_file_and_line(tmp_path, mldr_repo):
    _write_jsonl_gz(mldr_repo / "mldr-v1.0-en" / "test.jsonl.gz", [{"query_id": "q", "query": "x"}])
    entry = dataclasses.replace(get_benchmark("mldr"), source=str(mldr_repo))
    with pytest.raises(EmbedkitError, match=r"test\.jsonl\.gz:1: missing key 'positive_passages'"):
        sources.materialize(entry, tmp_path / "cache")
    assert not (tmp_path / "cache" / "mldr").exists()


# ---------------------------------------------------------------------------- CoIR


@pytest.fixture()
def csn_repo(tmp_path, make_hub_repo) -> Path:
    """CoIR-Retrieval/CodeSearchNet in miniature: python-{corpus,queries,qrels} as MTEB reads them."""
    return make_hub_repo(tmp_path / "CodeSearchNet", {
        "python-corpus": {"corpus": {"_id": ["c1", "c2", "c3"], "title": ["", "", ""],
                                     "text": ["Add two numbers.", "Parse a date.", "Open a file."]}},
        # every partition is in the queries config; only the judged test queries must be kept
        "python-queries": {"queries": {"_id": ["q1", "q2", "q9"], "partition": ["test", "test", "train"],
                                       "text": ["def add(a, b): return a + b", "def parse(s): ...", "def x(): pass"]}},
        "python-qrels": {"test": {"query-id": ["q1", "q2"], "corpus-id": ["c1", "c2"], "score": [1, 1]}},
    })


def test_codesearchnet_from_a_local_copy_of_the_repo(tmp_path, csn_repo, local_hf_datasets_cache):
    entry = dataclasses.replace(get_benchmark("csn/python"), source=str(csn_repo))
    folder = sources.materialize(entry, tmp_path / "cache")
    assert folder == tmp_path / "cache" / "csn" / "python"
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    assert queries == [{"_id": "q1", "text": "def add(a, b): return a + b"}, {"_id": "q2", "text": "def parse(s): ..."}]
    assert len((folder / "corpus.jsonl").read_text().splitlines()) == 3
    assert (folder / "qrels" / "test.tsv").read_text().splitlines()[1:] == ["q1\tc1\t1", "q2\tc2\t1"]
    assert json.loads((folder / "benchmark.json").read_text())["counts"] == {"documents": 3, "queries": 2, "qrels": 2}


def test_coir_through_the_hub_loading_call(tmp_path, csn_repo, local_hf_datasets_cache, monkeypatch):
    import datasets

    real_load = datasets.load_dataset
    seen = []

    def fake_load(path, name=None, split=None, revision=None, **kwargs):
        seen.append((path, name, split, revision))
        return real_load(str(csn_repo), name, split=split)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(sources, "_probe_hub", lambda entry, folder: None)
    entry = get_benchmark("csn/python")
    sources.materialize(entry, tmp_path / "cache")
    assert [(n, s) for _, n, s, _ in seen] == [("python-qrels", "test"), ("python-corpus", None),
                                                ("python-queries", None)]
    assert {p for p, *_ in seen} == {"CoIR-Retrieval/CodeSearchNet"} and {r for *_, r in seen} == {entry.revision}


def test_stackoverflow_qa_mteb_layout(tmp_path, local_hf_datasets_cache, make_hub_repo):
    repo = make_hub_repo(tmp_path / "stackoverflow-qa", {
        "corpus": {"corpus": {"_id": ["a1", "a2"], "title": ["", ""], "text": ["Use a list.", "Use git rebase."]}},
        "queries": {"queries": {"_id": ["s1", "s2"], "text": ["How do I store items?", "How do I squash?"]}},
        "default": {"test": {"query-id": ["s2"], "corpus-id": ["a2"], "score": [1]}},
    })
    entry = dataclasses.replace(get_benchmark("sqa"), source=str(repo))
    folder = sources.materialize(entry, tmp_path / "cache")
    assert folder == tmp_path / "cache" / "coir" / "stackoverflow-qa"
    assert [json.loads(line)["_id"] for line in (folder / "queries.jsonl").read_text().splitlines()] == ["s2"]


def test_coir_qrels_naming_missing_queries_leave_no_folder(tmp_path, local_hf_datasets_cache, make_hub_repo):
    repo = make_hub_repo(tmp_path / "so", {
        "corpus": {"corpus": {"_id": ["a1"], "title": [""], "text": ["x"]}},
        "queries": {"queries": {"_id": ["s1"], "text": ["y"]}},
        "default": {"test": {"query-id": ["s1", "s404"], "corpus-id": ["a1", "a1"], "score": [1, 1]}},
    })
    entry = dataclasses.replace(get_benchmark("coir/stackoverflow-qa"), source=str(repo))
    with pytest.raises(EmbedkitError, match="1 of the 2 queries judged in test are missing"):
        sources.materialize(entry, tmp_path / "cache")
    assert not (tmp_path / "cache" / "coir" / "stackoverflow-qa").exists()
    assert not list((tmp_path / "cache" / "coir").glob(".*partial"))


# ---------------------------------------------------------------------------- offline hub


@pytest.mark.parametrize("name", ["mldr", "csn/ruby", "coir/stackoverflow-qa"])
def test_hub_sources_offline_fail_fast(tmp_path, monkeypatch, local_hf_datasets_cache, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedkitError) as excinfo:
        sources.materialize(get_benchmark(name), tmp_path / "cache")
    message = str(excinfo.value)
    assert f"{name!r}" in message and "--data path/to/beir-folder" in message and "HF_HUB_OFFLINE is set" in message


def test_unreachable_hub_is_detected_before_the_client_retries(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    from huggingface_hub import HfApi

    timeouts = []
    real = HfApi.dataset_info
    monkeypatch.setattr(HfApi, "dataset_info", lambda self, *a, **kw: timeouts.append(kw.get("timeout"))
                        or real(self, *a, **kw))
    with pytest.raises(EmbedkitError,
                       match=r"cannot reach http://127\.0\.0\.1:9.*HF_HUB_OFFLINE=1.*--data path/to/beir-folder"):
        sources.materialize(get_benchmark("csn/go"), tmp_path / "cache")
    assert timeouts == [sources.HUB_PROBE_TIMEOUT_S]  # one probe with the short time-out, before any download


def test_hub_reachability_goes_through_the_proxy(tmp_path, monkeypatch):
    """HTTPS_PROXY is honoured: the probe asks the hub client, which tunnels through the proxy."""
    import socketserver
    import threading

    import huggingface_hub
    from huggingface_hub import constants

    seen: list[str] = []

    class Proxy(socketserver.StreamRequestHandler):
        def handle(self):
            seen.append(self.rfile.readline().decode("latin-1").strip())
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Proxy) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        proxy = f"http://127.0.0.1:{server.server_address[1]}"
        for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(var, raising=False)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
        huggingface_hub.close_session()  # the shared client reads proxy settings when it is made
        try:
            with pytest.raises(EmbedkitError,
                               match=r"cannot reach https://huggingface\.co.*--data path/to/beir-folder"):
                sources.materialize(get_benchmark("csn/go"), tmp_path / "cache")
        finally:
            server.shutdown()
            huggingface_hub.close_session()
    assert seen and seen[0].startswith("CONNECT huggingface.co:443")


def test_codesearchnet_queries_are_read_from_the_scored_partition(tmp_path, local_hf_datasets_cache, make_hub_repo):
    """As MTEB's COIRCodeSearchNetRetrieval filters partition == "test": an id that a train query also uses
    is read once, with its test text (not refused as a duplicate, not replaced by the train text)."""
    repo = make_hub_repo(tmp_path / "CodeSearchNet", {
        "python-corpus": {"corpus": {"_id": ["c1", "c2"], "title": ["add.py", "parse.py"],
                                     "text": ["Add two numbers.", "Parse a date."]}},
        "python-queries": {"queries": {"_id": ["q1", "q1", "q2"], "partition": ["train", "test", "test"],
                                       "text": ["def add_train(): ...", "def add(a, b): return a + b",
                                                "def parse(s): ..."]}},
        "python-qrels": {"test": {"query-id": ["q1", "q2"], "corpus-id": ["c1", "c2"], "score": [1, 1]}},
    })
    folder = sources.materialize(dataclasses.replace(get_benchmark("csn/python"), source=str(repo)), tmp_path / "c")
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    assert queries == [{"_id": "q1", "text": "def add(a, b): return a + b"}, {"_id": "q2", "text": "def parse(s): ..."}]
    assert json.loads((folder / "corpus.jsonl").read_text().splitlines()[0])["title"] == "add.py"  # as published
    manifest = json.loads((folder / "benchmark.json").read_text())
    assert manifest["document_text"] == "text" and manifest["queries_partition"] == "test"


def test_repeated_query_id_within_the_scored_partition_is_refused(tmp_path, local_hf_datasets_cache, make_hub_repo):
    repo = make_hub_repo(tmp_path / "CodeSearchNet", {
        "go-corpus": {"corpus": {"_id": ["c1"], "title": [""], "text": ["x"]}},
        "go-queries": {"queries": {"_id": ["q1", "q1"], "partition": ["test", "test"], "text": ["a", "b"]}},
        "go-qrels": {"test": {"query-id": ["q1"], "corpus-id": ["c1"], "score": [1]}},
    })
    with pytest.raises(EmbedkitError, match="query id 'q1' appears twice in partition 'test'"):
        sources.materialize(dataclasses.replace(get_benchmark("csn/go"), source=str(repo)), tmp_path / "c")
    assert not (tmp_path / "c" / "csn" / "go").exists()
