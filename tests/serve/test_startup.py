"""`embedkit serve` start-up: every failure that needs no model (missing extras, port in use, bad flags) is one
`embedkit: error:` line and exit 2 before the model loads; and the real command in a subprocess."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from embedkit.config import ServeConfig
from embedkit.errors import EmbedkitError

TIMEOUT = 60.0


def _serve(argv: list[str], capsys) -> tuple[int, str]:
    from embedkit.cli import main

    code = main(["serve", *argv])
    return code, capsys.readouterr().err


def test_port_in_use_is_reported_before_the_model_loads(tmp_path, capsys):
    from embedkit.serve.startup import bind

    taken = bind("127.0.0.1", 0)
    taken.listen(1)
    port = taken.getsockname()[1]
    try:  # no index there either: the port error must come first
        code, err = _serve(["--index-dir", str(tmp_path / "no-index"), "--port", str(port)], capsys)
    finally:
        taken.close()
    assert code == 2
    assert err.strip() == f"embedkit: error: cannot listen on 127.0.0.1:{port}: the port is in use (another " \
                          "server?); choose another with --port"


def test_missing_extras_are_named_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("uvicorn", "prometheus_client") else real(name, *a))
    code, err = _serve(["--index-dir", str(tmp_path / "no-index"), "--port", "0"], capsys)
    assert code == 2
    assert err.strip() == ("embedkit: error: embedkit serve needs uvicorn, prometheus-client (the 'serve' extra): "
                           "pip install 'embedkit[serve]'")


@pytest.mark.parametrize("flags, message", [
    (["--threads", "0"], "serve.threads: must be at least 1"),
    (["--port", "70000"], "serve.port: must be at most 65535"),
    (["--max-queue", "-1"], "serve.max_queue: must be at least 1"),
    (["--request-timeout", "0"], "serve.request_timeout: must be above 0"),
    (["--header-timeout", "0"], "serve.header_timeout: must be above 0"),
    (["--max-header-bytes", "10"], "serve.max_header_bytes: must be at least 1024"),
    (["--api-key", " "], "serve api_key: must be printable text"),
])
def test_bad_flags(tmp_path, capsys, flags, message):
    code, err = _serve(["--index-dir", str(tmp_path), *flags], capsys)
    assert code == 2 and err.startswith("embedkit: error: ") and message in err


def test_api_key_flags_are_text_and_the_environment_fills_in(monkeypatch):
    from embedkit.cli import build_parser
    from embedkit.cli.fields import from_args
    from embedkit.serve.startup import with_env_key

    args = build_parser().parse_args(["serve", "--index-dir", "x", "--api-key", "0123", "--served-model-name", "yes"])
    config = from_args(args, ServeConfig, "serve")
    assert config.api_key == "0123" and config.served_model_name == "yes"  # not YAML's 83 and True
    monkeypatch.setenv("EMBEDKIT_API_KEY", "from-env")
    assert with_env_key(config).api_key == "0123"  # a flag wins
    assert with_env_key(ServeConfig()).api_key == "from-env"


def test_exposed_without_a_key_warns(caplog):
    from embedkit.serve.startup import warn_if_exposed

    with caplog.at_level(logging.WARNING, logger="embedkit.serve"):
        warn_if_exposed(ServeConfig(host="127.0.0.1"))
        warn_if_exposed(ServeConfig(host="0.0.0.0", api_key="k"))
        assert not caplog.records
        warn_if_exposed(ServeConfig(host="0.0.0.0"))
    assert "listening on 0.0.0.0 without an API key" in caplog.records[0].getMessage()


def test_bind_errors():
    from embedkit.serve.startup import bind

    with pytest.raises(EmbedkitError, match="unknown address"):
        bind("no-such-host.invalid", 8000)
    with pytest.raises(EmbedkitError, match="no such address"):
        bind("203.0.113.7", 0)  # TEST-NET-3: never an address of this machine


@pytest.mark.slow
def test_cli_serve_subprocess(minilm_index, code_pairs):
    from embedkit.serve.startup import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # the server binds it again (SO_REUSEADDR); a clash would fail the health wait below
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               EMBEDKIT_API_KEY="k-123")
    proc = subprocess.Popen([sys.executable, "-m", "embedkit", "serve", "--index-dir", str(minilm_index),
                             "--port", str(port), "--fuse-with", "bm25", "--fusion", "weighted", "--weights", "0.5",
                             "0.5", "--served-model-name", "minilm"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "embedkit serve did not answer /health"
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.post(f"{url}/search", json={"query": "a"}, timeout=TIMEOUT).status_code == 401
        auth = {"authorization": "Bearer k-123"}
        reply = httpx.post(f"{url}/search", json={"query": code_pairs[0].query, "k": 3}, headers=auth,
                           timeout=TIMEOUT).json()
        assert reply["method"] == "weighted(dense,bm25)" and len(reply["results"][0]["hits"]) == 3
        embedded = httpx.post(f"{url}/v1/embeddings", json={"input": "a", "model": "minilm"}, headers=auth,
                              timeout=TIMEOUT)
        assert embedded.status_code == 200 and len(embedded.json()["data"][0]["embedding"]) == 384
        # a second server on the same port is refused before it loads anything; the first keeps the port
        second = subprocess.run([sys.executable, "-m", "embedkit", "serve", "--index-dir", str(minilm_index),
                                 "--port", str(port)], env=env, capture_output=True, timeout=120)
        assert second.returncode == 2 and b"the port is in use" in second.stderr, second.stderr
        assert httpx.get(f"{url}/health", timeout=TIMEOUT).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]  # drained, then a clean exit
    assert out == b""  # stdout holds results only; a server has none
    text = err.decode()
    assert "stopped by SIGTERM after finishing the requests in flight" in text
    assert f"serving weighted(dense,bm25) (model minilm) on http://127.0.0.1:{port}" in text
    assert '"POST /search" 401' in text and '"POST /search" 200' in text  # the access log
    assert "k-123" not in text


def test_the_serving_guide_documents_every_serve_flag():
    import dataclasses

    root = Path(__file__).resolve().parents[2]
    text = "\n".join(page.read_text(encoding="utf-8") for page in sorted((root / "docs").rglob("*.md")))
    flags = [f.metadata.get("flag") or "--" + f.name.replace("_", "-") for f in dataclasses.fields(ServeConfig)]
    assert [flag for flag in flags if f"`{flag}" not in text] == []


def test_set_threads(monkeypatch):
    import torch

    from embedkit.serve.startup import set_threads

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM"):
        monkeypatch.setenv(name, "x")
    set_threads(1)  # the serve package's tests already run with one thread: nothing to restore
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"  # the tokenizer keeps one thread
