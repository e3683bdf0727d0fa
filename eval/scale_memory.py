"""Peak memory and time of ``embedkit index`` on large synthetic corpora, with a tiny random ModernBERT.

The model is tiny (hidden 64, 3 layers) so that the measurement is about embedkit's own memory
(reading, sharding, the document store, FAISS) rather than the encoder's. Each size runs in a fresh
subprocess; peak RSS is that child's ``ru_maxrss``.

    python eval/scale_memory.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit.data import write_corpus as write_jsonl
from benchkit.machine import cpu_model, load_average
from benchkit.results import save

WORDS = ("data index query vector model token search corpus shard batch encode memory python function return "
         "value list dict string parse file read write open close error check test build train score rank "
         "dense sparse graph tree node edge path root leaf hash table cache queue stack heap sort merge split "
         "join map filter reduce stream buffer socket server client request response header body json yaml").split()


def write_corpus(path: Path, size: int, words: int = 20, seed: int = 0) -> None:
    rng = random.Random(seed)
    write_jsonl(path, ((f"d{i}", " ".join(rng.choice(WORDS) for _ in range(words))) for i in range(size)))


def run_one(model: Path, size: int, workdir: Path, shard_size: int, batch_size: int, index_type: str,
            threads: int) -> dict:
    corpus = workdir / f"corpus-{size}.jsonl"
    t0 = time.time()
    write_corpus(corpus, size)
    gen_s = time.time() - t0
    index_dir = workdir / f"index-{size}"
    # A fresh child per run: ru_maxrss of RUSAGE_CHILDREN is the max over waited-for children, so each
    # measurement runs under its own intermediate process that reports its child's peak.
    code = ("import resource, subprocess, sys, json, time\n"
            "t = time.time(); rc = subprocess.call(sys.argv[1:])\n"
            "print(json.dumps({'rc': rc, 'seconds': time.time() - t,"
            " 'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    cmd = [sys.executable, "-c", code, sys.executable, "-m", "embedkit", "index", "--model", str(model),
           "--corpus", str(corpus), "--index-dir", str(index_dir), "--shard-size", str(shard_size),
           "--batch-size", str(batch_size), "--backend", index_type]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(threads))
    load = load_average()  # before the child: what else was running
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"embedkit index failed (rc {result['rc']}):\n{out.stderr[-3000:]}")
    sizes = {p.name: p.stat().st_size for p in index_dir.iterdir() if p.is_file()}
    corpus_bytes = corpus.stat().st_size
    corpus.unlink()
    return {"documents": size, "words_per_document": 20, "corpus_mib": round(corpus_bytes / 2**20, 1),
            "peak_rss_mib": round(result["maxrss_kib"] / 1024, 1), "index_seconds": round(result["seconds"], 1),
            "docs_per_second": round(size / result["seconds"]), "generate_seconds": round(gen_s, 1),
            "index_files_mib": {k: round(v / 2**20, 1) for k, v in sizes.items()},
            "shard_size": shard_size, "batch_size": batch_size, "index_type": index_type, "torch_threads": threads,
            "load_average_before": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shard-size", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--index-type", default="flat", choices=["flat", "hnsw", "ivfpq"])
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "scale_memory.json"))
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP_NUM_THREADS of the child; 1 is much faster on a busy shared machine")
    parser.add_argument("--note", default="", help="free text stored with each run (e.g. the machine's load)")
    args = parser.parse_args()

    from embedkit.models.tiny import build_tiny_modernbert

    runs = json.loads(Path(args.output).read_text())["runs"] if Path(args.output).is_file() else []
    with tempfile.TemporaryDirectory(prefix="embedkit-scale-") as tmp:
        workdir = Path(tmp)
        model = build_tiny_modernbert(workdir / "tiny-model", [" ".join(WORDS)] * 50)
        for size in args.sizes:
            result = run_one(model, size, workdir, args.shard_size, args.batch_size, args.index_type, args.threads)
            result["note"] = args.note
            print(json.dumps(result), flush=True)
            # runs already in the file (other sizes or settings) are kept; a same-size, same-settings run is replaced
            key = ("documents", "shard_size", "batch_size", "index_type", "torch_threads")
            runs = [r for r in runs if tuple(r.get(k) for k in key) != tuple(result.get(k) for k in key)] + [result]
            output = {"machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
                                  "python": platform.python_version(),
                                  "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                                      / 2**30)},
                      "model": "tiny random ModernBERT (hidden 64, 3 layers), mean pooling, dim 64",
                      "runs": runs}
            save(output, args.output)


if __name__ == "__main__":
    main()
