"""Serve fixtures: a FAISS index of the packaged MiniLM, servers on free loopback ports (uvicorn in a thread of
the test process, stopped by the fixture), and a probe around a real encoder that records, fails or holds
the texts it is given (to test isolation and dropped work against the real model)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

# The serve extra, which the dev install includes: imported, not skipped, so that a missing one fails the suite.
import fastapi  # noqa: F401
import prometheus_client  # noqa: F401
import pytest
import uvicorn

TIMEOUT = 60.0


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """The server's default (--threads 1): on a shared CI machine torch's own threads make latency erratic."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def minilm_index(tmp_path_factory, minilm_path, code_pairs) -> Path:
    """A flat FAISS index of the packaged all-MiniLM-L6-v2 over 100 stdlib functions (ids are the pairs')."""
    from embedkit.config import IndexSettings
    from embedkit.data.corpus import Corpus
    from embedkit.index.build import build_index

    root = tmp_path_factory.mktemp("serve-minilm")
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for p in code_pairs[:100]:
            f.write(json.dumps({"_id": p.id, "text": p.code}) + "\n")
    return build_index(minilm_path, Corpus(str(root / "corpus.jsonl")), root / "dense",
                       IndexSettings(backend="flat", batch_size=32), progress=False)


@pytest.fixture(scope="module")
def minilm(minilm_index):
    """The index opened once per module, as `embedkit serve` opens it."""
    from embedkit.config import EncodeSettings
    from embedkit.index.build import open_index

    return open_index(minilm_index, settings=EncodeSettings(batch_size=32))


class Probe:
    """A real encoder that records every text it encodes, raises on texts holding ``fail_on``, and holds any
    call with a text holding ``hold_on`` until ``gate`` is set (so requests pile up behind it)."""

    def __init__(self, inner, fail_on: str = "\x00FAIL", hold_on: str = "\x00HOLD"):
        self.inner, self.fail_on, self.hold_on = inner, fail_on, hold_on
        self.seen: list[str] = []
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.held = threading.Event()

    def _check(self, texts: list[str]) -> None:
        self.calls.append(list(texts))
        self.seen += texts
        if any(self.hold_on in t for t in texts):
            self.held.set()
            assert self.gate.wait(TIMEOUT), "the test never opened the gate"
        if any(self.fail_on in t for t in texts):
            raise ValueError("the model cannot encode this text")

    def encode_queries(self, texts):
        self._check(texts)
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts):
        self._check(texts)
        return self.inner.encode_documents(texts)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture()
def probe(minilm):
    """``minilm``'s encoder wrapped in a Probe for the test (restored after)."""
    real = minilm.encoder
    minilm.encoder = Probe(real)
    yield minilm.encoder
    minilm.encoder.gate.set()
    minilm.encoder = real


class Servers:
    """Apps started on free 127.0.0.1 ports, each uvicorn in a daemon thread; ``stop`` ends them all."""

    def __init__(self):
        self.running = []

    def start(self, app) -> str:
        from embedkit.serve.protocol import uvicorn_config
        from embedkit.serve.startup import bind

        sock = bind("127.0.0.1", 0)
        server = uvicorn.Server(uvicorn_config(app, app.state.embedkit.config))  # as `embedkit serve` runs it
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + TIMEOUT
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.running.append((server, thread, sock))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    def stop(self) -> None:
        for server, thread, sock in self.running:
            server.should_exit = True
            thread.join(timeout=TIMEOUT)
            sock.close()
        self.running.clear()


@pytest.fixture()
def start_server():
    """``start_server(app) -> base URL``; stopped at the end of the test."""
    servers = Servers()
    yield servers.start
    servers.stop()


@pytest.fixture(scope="module")
def start_module_server():
    """Like ``start_server``, for servers shared by a module's tests."""
    servers = Servers()
    yield servers.start
    servers.stop()
