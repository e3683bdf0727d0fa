"""Starting ``embedkit serve`` in the order that fails fast: the serve extras are importable, the port is bound,
the threads are set, and only then the model and index load (seconds to minutes) before uvicorn takes the
already bound socket."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import logging
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from embedkit.config import API_KEY_ENV, EncodeSettings, RetrieveConfig, ServeConfig
from embedkit.errors import EmbedkitError

if TYPE_CHECKING:
    from embedkit.index.base import Searcher

logger = logging.getLogger("embedkit.serve")

EXTRAS = {"fastapi": "fastapi", "uvicorn": "uvicorn", "prometheus_client": "prometheus-client",
          "httptools": "httptools"}


def check_extras() -> None:
    missing = [package for module, package in EXTRAS.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise EmbedkitError(f"embedkit serve needs {', '.join(missing)} (the 'serve' extra): "
                            "pip install 'embedkit[serve]'")


def with_env_key(cfg: ServeConfig) -> ServeConfig:
    """The API key from ``EMBEDKIT_API_KEY`` when no flag gave one (a flag shows in ``ps``, the environment not)."""
    key = os.environ.get(API_KEY_ENV)
    if cfg.api_key is None and key:
        return ServeConfig(**{**vars(cfg), "api_key": key})
    return cfg


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening at once, before the model loads: SO_REUSEADDR lets a second
    socket bind a port that no socket listens on yet, so a bound but idle socket would let two servers started
    together both bind it. Connections made while the model loads wait in the backlog until uvicorn accepts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode (not..a..host)
        raise EmbedkitError(f"cannot listen on {host[:100]}:{port}: unknown address "
                            f"({getattr(exc, 'strerror', None) or 'not a valid host name'})") from None
    family, _, _, _, address = infos[0]
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without
    # it a reply written in two parts (headers, body) waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse a port in TIME_WAIT
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "the port is in use (another server?); choose another with --port",
               errno.EACCES: "permission denied (ports below 1024 need privileges)",
               errno.EADDRNOTAVAIL: "this machine has no such address"}.get(exc.errno, exc.strerror)
        raise EmbedkitError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


def set_threads(threads: int) -> None:
    """Threads of torch (intra- and inter-op) and FAISS; called before the model loads. The tokenizer stays on
    one thread: a micro-batch of queries tokenizes in well under a millisecond, and its thread pool only
    competed with torch's (single queries took several times longer with it in our measurements)."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only possible before torch's first parallel work
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:
        pass


def warn_if_exposed(cfg: ServeConfig) -> None:
    from embedkit.serve.guards import is_loopback

    if not is_loopback(cfg.host) and cfg.api_key is None:
        logger.warning("listening on %s without an API key: anyone who can reach this address can search the "
                       "index and use the model; set %s (or --api-key)", cfg.host, API_KEY_ENV)


def serve(index: Searcher, config: ServeConfig | None = None, sock: socket.socket | None = None) -> None:
    """Serve ``index`` on ``sock`` (or a socket bound to ``config``'s address) until SIGTERM or SIGINT (Ctrl-C):
    then requests in flight are finished (up to --request-timeout) and it returns normally, so the process exits
    0 after a clean drain."""
    from embedkit.serve.app import create_app
    from embedkit.serve.protocol import uvicorn_config

    cfg = config or ServeConfig()
    sock = sock or bind(cfg.host, cfg.port)
    app = create_app(index, cfg)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    state = app.state.embedkit
    logger.info("serving %s (model %s) on http://%s:%d: POST /search, /v1/embeddings, /rerank; GET /health, /info, "
                "/metrics, /v1/models%s", state.method, state.model.name, shown, port,
                "; API key required" if cfg.api_key else "")
    server = draining_server(uvicorn_config(app, cfg))
    server.run(sockets=[sock])
    if server.stopped_by:
        logger.info("stopped by %s after finishing the requests in flight",
                    ", ".join(signal.Signals(s).name for s in server.stopped_by))


def _server_class() -> type:
    import uvicorn

    class Draining(uvicorn.Server):
        """uvicorn's server, which re-raises the SIGTERM/SIGINT it drained on (the process then dies of the
        signal, exit -15); this one records it and returns, for a clean exit 0."""

        stopped_by: list[int] = []

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                self.stopped_by = list(self._captured_signals)
                self._captured_signals.clear()

    return Draining


def draining_server(config: object) -> object:
    """A :class:`Draining` uvicorn server (its class is made on first use: uvicorn is imported lazily)."""
    return _server_class()(config)


def run_server(index_dir: str | Path, retrieve: RetrieveConfig, model: str | None, settings: EncodeSettings,
               config: ServeConfig) -> None:
    """``embedkit serve``: every check that can fail without the model first, then load and serve."""
    check_extras()
    config = with_env_key(config)
    sock = bind(config.host, config.port)
    try:
        warn_if_exposed(config)
        set_threads(config.threads)
        from embedkit.retrieve.retriever import open_retriever

        index = open_retriever(index_dir, retrieve, model, settings)
        serve(index, config, sock)
    finally:
        sock.close()
