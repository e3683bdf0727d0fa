"""Throughput of ModernBERT encoders: sentence-transformers vs HF SDPA vs embedkit's packed forward.

One run, one random-init model per config, the same inputs for every method:

- ``st_encode_b32`` / ``st_encode_b256``: ``SentenceTransformer.encode`` (HF ModernBERT with SDPA; it sorts
  by length and pads every batch to its longest text);
- ``hf_sdpa_sorted``: ``ModernBertModel`` with SDPA on length-sorted batches of at most ``--max-tokens``
  padded tokens, mean pooling;
- ``embedkit_packed``: :func:`embedkit.models.packed.encode_packed` (same token budget, no padding);
- ``st_train`` / ``st_train_unpadded``: sentence-transformers MultipleNegativesRankingLoss steps
  (forward, backward, AdamW) on (query, passage) pairs, without and with ``enable_packed``; the
  Trainer's own overhead is left out as it is the same for both;
- ``st_gradcache`` / ``st_gradcache_unpadded``: one CachedMultipleNegativesRankingLoss (GradCache) step of
  ``--gradcache-batch`` pairs (4096 by default: in-batch negatives over the whole batch, memory bounded by
  the mini-batch), with its peak GPU memory.

- ``embedkit_index_cli``: ``embedkit index`` of a JSONL corpus as a user runs it, in a fresh process, twice: a
  small corpus (start-up: imports, model loading, self-check, compilation or its on-disk cache) and a large one;
  the row's ``steady_tokens_per_s`` is the difference of the two, ``startup_share`` the small run's share of
  the large one's time (it should be under 0.1: ``--index-seconds`` sizes the large corpus from the measured
  encode rate);
- ``--host-only``: the host side alone (eval/host_throughput.py): read -> tokenise -> pack -> pinned copy with
  the forward a no-op, beside the raw tokenizer on the same real texts, at 1 and N threads.

How it is measured: texts are random words from a vocabulary on which a WordPiece tokenizer was trained so
that every word is one token, so a text of ``k - 2`` words is exactly ``k`` tokens with [CLS]/[SEP]; every
inference method is timed end to end from texts to pooled embeddings (tokenisation included), after every
method has warmed up on every length range; the best of ``--repeats`` runs is kept. tokens/s counts real
(non-padding) tokens, the same number for every method. Lengths follow
the ModernBERT paper: short N(256, 64) clamped to 16..512, fixed 512, long N(4096, 1024) clamped to 16..8192.
Models run in ``--dtype`` (bf16 on CUDA by default); training keeps fp32 weights under bf16 autocast on CUDA.

    python eval/throughput.py                 # base on the GPU (--configs large for large)
    python eval/throughput.py --small         # tiny model, short lengths: a ~1-minute CPU smoke run
    python eval/throughput.py --host-only     # the host pipeline alone, on real text
    # CPU, ModernBERT-base fp32, sentence-transformers vs packed on the three input sets (about 7 minutes on 2 idle
    # cores; 96 / 6 docs about 10):
    nice python eval/throughput.py --inference-only --num-docs 64 --num-long-docs 4 --skip st_encode_b256 hf_sdpa_sorted

The JSON names the machine (CPU model, cores, native bf16 sets) and the load average before and after the run and
after each row's timing: on a shared machine compare only rows of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from embedkit.artifacts import write_json
from embedkit.models.packed import default_token_budget
from embedkit.models.precision import cpu_bf16_features, cpu_name

logger = logging.getLogger("throughput")

CONFIGS = {  # ModernBERT paper sizes; tiny is for --small
    "base": dict(num_hidden_layers=22, hidden_size=768, num_attention_heads=12, intermediate_size=1152),
    "large": dict(num_hidden_layers=28, hidden_size=1024, num_attention_heads=16, intermediate_size=2624),
    "tiny": dict(num_hidden_layers=3, hidden_size=128, num_attention_heads=4, intermediate_size=192),
}
# name -> (mean, std, low, high); std 0 = fixed length
INPUT_SETS = {
    "short-variable": (256, 64, 16, 512), "short-fixed": (512, 0, 512, 512), "long-variable": (4096, 1024, 16, 8192),
}
SMALL_INPUT_SETS = {
    "short-variable": (64, 16, 16, 128), "short-fixed": (128, 0, 128, 128), "long-variable": (512, 128, 16, 1024),
}


@dataclass
class Row:
    config: str
    inputs: str
    method: str
    docs: int
    tokens: int
    seconds: float | None = None
    tokens_per_s: float | None = None
    status: str = "ok"
    extra: dict = field(default_factory=dict)


class Results:
    """The JSON file, rewritten (atomically) after every row, so a run cut short keeps what it measured."""

    def __init__(self, path: Path, meta: dict):
        self.path, self.meta, self.rows = path, meta, []

    def add(self, row: Row) -> None:
        self.rows.append(row)
        logger.info("%s / %s / %s: %s tokens/s %s", row.config, row.inputs, row.method,
                    f"{row.tokens_per_s:,.0f}" if row.tokens_per_s else row.status, row.extra or "")
        self.save()

    def save(self, table: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"meta": self.meta, "rows": [asdict(r) for r in self.rows],
                               "table": table or markdown(self.rows)})


def device_name(device: torch.device) -> str:
    """The GPU, or the CPU model (/proc/cpuinfo): every result names its machine."""
    from embedkit.models.precision import cpu_name

    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def make_vocabulary(num_words: int = 2000, seed: int = 0) -> tuple[list[str], object]:
    """Random lowercase words and a WordPiece tokenizer for which each of them is a single token."""
    from embedkit.models.tiny import train_tokenizer

    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < num_words:
        words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 8))))
    tokenizer = train_tokenizer([" ".join(sorted(words))] * 3, vocab_size=4 * num_words)
    single = [w for w in sorted(words) if len(tokenizer.tokenize(w)) == 1]
    return single, tokenizer


def make_texts(words: list[str], n: int, spec: tuple[int, int, int, int], seed: int) -> list[str]:
    mean, std, low, high = spec
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.rint(rng.normal(mean, std, size=n)), low, high).astype(int) if std else np.full(n, mean)
    return [" ".join(rng.choice(words, size=max(int(k) - 2, 1))) for k in lengths]


def build_model(name: str, tokenizer, folder: Path, device: torch.device, dtype: torch.dtype):
    from sentence_transformers import SentenceTransformer
    from transformers import ModernBertConfig, ModernBertModel

    config = ModernBertConfig(vocab_size=50368, max_position_embeddings=8192, pad_token_id=tokenizer.pad_token_id,
                              cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                              bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                              attn_implementation="sdpa", **CONFIGS[name])
    torch.manual_seed(0)
    ModernBertModel(config).to(dtype).save_pretrained(folder)  # the index run loads these weights as they are
    tokenizer.save_pretrained(folder)
    model = SentenceTransformer(str(folder), device=str(device), model_kwargs={"dtype": dtype})
    model.max_seq_length = 8192
    return model.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hf_sdpa_sorted(st_model, texts: list[str], max_tokens: int) -> np.ndarray:
    """HF forward with padding on length-sorted batches of at most ``max_tokens`` padded tokens; mean pooling."""
    transformer = st_model[0]
    hf, tok, device = transformer.auto_model, transformer.tokenizer, st_model.device
    ids = tok(texts, truncation=True, max_length=transformer.max_seq_length, return_attention_mask=False)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out: list[np.ndarray | None] = [None] * len(ids)
    start = 0
    with torch.inference_mode():
        while start < len(order):
            rows = max(1, max_tokens // len(ids[order[start]]))
            batch = order[start:start + rows]
            start += len(batch)
            enc = tok.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt").to(device)
            hidden = hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
            emb = ((hidden * mask).sum(1) / mask.sum(1)).float().cpu().numpy()  # (batch, hidden)
            for i, row in zip(batch, emb):
                out[i] = row
    return np.stack(out)


def timed(device: torch.device, fn, repeats: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls (the machine's noise only ever adds time) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def run_inference(name: str, st_model, sets: dict[str, list[str]], max_tokens: int | None, repeats: int,
                  rows: Results, compile: bool | None = None, cpu_bf16: bool = False,
                  skip: tuple[str, ...] = ()) -> None:
    from embedkit.models.packed import encode_packed

    device = st_model.device
    methods = {
        "st_encode_b32": lambda t: st_model.encode(t, batch_size=32, convert_to_numpy=True),
        "st_encode_b256": lambda t: st_model.encode(t, batch_size=256, convert_to_numpy=True),
        "hf_sdpa_sorted": lambda t: hf_sdpa_sorted(st_model, t, max_tokens or 16384),
        # what DenseEncoder (embedkit index / eval) runs on this device
        "embedkit_packed": lambda t: encode_packed(st_model, t, max_tokens_per_batch=max_tokens),
    }
    if compile is not None:
        methods[f"embedkit_packed_{'compiled' if compile else 'eager'}"] = (
            lambda t: encode_packed(st_model, t, max_tokens_per_batch=max_tokens, compile=compile))
    if cpu_bf16 and device.type == "cpu" and not cpu_bf16_features():
        logger.warning("--cpu-bf16: this CPU (%s) has no native bf16 (AVX512-BF16/AMX); the row is left out",
                       cpu_name())
    elif cpu_bf16 and device.type == "cpu":
        methods["embedkit_packed_cpu_bf16"] = (
            lambda t: encode_packed(st_model, t, max_tokens_per_batch=max_tokens, compile=compile, precision="bf16"))
    methods = {k: v for k, v in methods.items() if k not in skip}  # st_encode_b32, the reference, cannot be skipped
    tok = st_model.tokenizer
    for texts in sets.values():  # warm every method on every length range before timing any of them
        for fn in methods.values():  # (a few texts: a small long set would otherwise be timed twice)
            fn(texts[:min(8, max(2, len(texts) // 4))])
    for set_name, texts in sets.items():
        tokens = sum(len(x) for x in tok(texts, truncation=True, max_length=8192)["input_ids"])
        logger.info("%s / %s: %d docs, %d tokens", name, set_name, len(texts), tokens)
        set_rows = {method: Row(name, set_name, method, len(texts), tokens) for method in methods}
        outputs: dict[str, np.ndarray] = {}
        # The methods take turns within each repeat (rather than one method's repeats back to back), so that
        # load from other jobs on a shared machine falls on all of them alike; the best time of each is kept.
        for _ in range(repeats):
            for method, fn in methods.items():
                row = set_rows[method]
                if row.status != "ok":
                    continue
                try:
                    # B023: the lambda is called in this iteration, before the loop variables change
                    seconds, outputs[method] = timed(device, lambda: fn(texts))  # noqa: B023
                except torch.cuda.OutOfMemoryError:
                    row.status = "OOM"
                    torch.cuda.empty_cache()
                    continue
                row.seconds = seconds if row.seconds is None else min(row.seconds, seconds)
                row.extra["load_1min"] = round(os.getloadavg()[0], 2)  # after this method's latest run
        reference = outputs.get(next(iter(methods)))
        for method, row in set_rows.items():
            if row.seconds:
                row.tokens_per_s = tokens / row.seconds
            if method in outputs and reference is not None and outputs[method] is not reference:
                # the methods must agree, or the speed-up means nothing
                a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
                b = outputs[method] / np.linalg.norm(outputs[method], axis=1, keepdims=True)
                row.extra["min_cosine_vs_st_b32"] = float((a * b).sum(1).min())
            rows.add(row)


@dataclass
class TrainPlan:
    kind: str                                   # "mnrl" | "gradcache"
    pairs: int                                  # pairs in a timed step
    unpadded: bool                              # embedkit's packed forward swapped in
    batches: list[tuple[list[str], list[str]]]  # warm-up steps first
    warmup: int


def run_training(name: str, st_model, queries: list[str], passages: list[str], batch_size: int, steps: int,
                 rows: Results, gradcache_batch: int = 0, gradcache_mini_batch: int = 0) -> None:
    """MNRL steps at ``batch_size`` pairs, ST vs embedkit's packed forward; then, if ``gradcache_batch``, one
    CachedMNRL (GradCache) step of that many pairs in mini-batches of ``gradcache_mini_batch``, both ways.

    Every variant is built and warmed up (MNRL: 2 steps; GradCache: a step of two mini-batches) before any is
    timed. GradCache rows record the peak GPU memory of their step.
    """
    try:  # sentence-transformers >= 5.4 (the old path warns)
        from sentence_transformers.sentence_transformer.losses import (
            CachedMultipleNegativesRankingLoss,
            MultipleNegativesRankingLoss,
        )
    except ImportError:
        from sentence_transformers.losses import CachedMultipleNegativesRankingLoss, MultipleNegativesRankingLoss

    from embedkit.models.packed import enable_packed

    device = st_model.device
    cuda = device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    def batches_of(size: int, count: int) -> list[tuple[list[str], list[str]]]:
        return [(queries[i:i + size], passages[i:i + size]) for i in range(0, size * count, size)]

    stages = []  # (kind, method, pairs, batches, warm-up steps)
    if steps:
        stages.append(("mnrl", "st_train", batch_size, batches_of(batch_size, steps + 2), 2))
    if gradcache_batch:
        warm = batches_of(2 * gradcache_mini_batch, 1)
        stages.append(("gradcache", "st_gradcache", gradcache_batch, warm + batches_of(gradcache_batch, 1), 1))
    plans = {method + suffix: TrainPlan(kind, pairs, bool(suffix), batches, warmup)
             for kind, method, pairs, batches, warmup in stages for suffix in ("", "_unpadded")}
    variants = {}
    for method, plan in plans.items():
        model = copy.deepcopy(st_model).float().train()
        if cuda:  # as accelerate does in the Trainer: the forward itself runs under autocast, so GradCache's
            model.forward = torch.autocast("cuda", dtype=torch.bfloat16)(model.forward)  # re-forward too
        if plan.unpadded:
            enable_packed(model, mode="on")
        loss = (CachedMultipleNegativesRankingLoss(model, mini_batch_size=gradcache_mini_batch)
                if plan.kind == "gradcache" else MultipleNegativesRankingLoss(model))
        variants[method] = (model, loss, torch.optim.AdamW(model.parameters(), lr=1e-5))

    def step(method: str, q: list[str], p: list[str]) -> int:
        model, loss_fn, optimizer = variants[method]
        tokenize = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers >= 5.4 / older
        features = [tokenize(q), tokenize(p)]
        features = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in f.items()} for f in features]
        with autocast:
            loss = loss_fn(features, labels=None)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return int(sum(f["attention_mask"].sum() for f in features))

    for method, plan in plans.items():
        for b in plan.batches[:plan.warmup]:
            step(method, *b)
    for method, plan in plans.items():
        timed_batches = plan.batches[plan.warmup:]
        row = Row(name, f"{plan.kind}-b{plan.pairs}", method, plan.pairs * len(timed_batches), 0)
        logger.info("%s / training / %s: %d steps of %d pairs", name, method, len(timed_batches), plan.pairs)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            # B023: the lambda is called in this iteration, before the loop variables change
            row.seconds, row.tokens = timed(device, lambda: sum(step(method, *b) for b in timed_batches))  # noqa: B023
            row.tokens_per_s = row.tokens / row.seconds
            if plan.kind == "gradcache":
                row.extra["mini_batch"] = gradcache_mini_batch
                if device.type == "cuda":
                    row.extra["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        except torch.cuda.OutOfMemoryError:
            row.status = "OOM"
            torch.cuda.empty_cache()
        rows.add(row)
        if plan.kind == "gradcache":  # free the big step's memory before the next variant
            variants.pop(method)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    variants.clear()


def _write_corpus(path: Path, pool: list[str], docs: int) -> None:
    """``docs`` documents cycling through ``pool`` (writing a large corpus of distinct random texts would take
    longer than indexing it; the tokenizer and the model do the same work for a repeated text)."""
    from benchkit.data import write_corpus

    write_corpus(path, ((f"d{i}", pool[i % len(pool)]) for i in range(docs)))


def _index_once(folder: Path, corpus: Path, work: Path) -> tuple[float, str | None]:
    command = [sys.executable, "-m", "embedkit", "index", "--model", str(folder), "--corpus", str(corpus),
               "--index-dir", str(work / f"index-{corpus.stem}"), "--packed", "auto", "--overwrite"]
    from benchkit.children import checkout_env

    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=checkout_env())
    seconds = time.perf_counter() - start
    return seconds, None if proc.returncode == 0 else proc.stderr[-1000:]


def run_index(name: str, folder: Path, pool: list[str], pool_tokens: list[int], docs: int, rows: Results,
              startup_docs: int = 256) -> None:
    """``embedkit index`` of a JSONL corpus as a user runs it, in fresh processes (start-up, model loading,
    reading, tokenisation, encoding, compilation or its cache, FAISS), timed from outside: first ``startup_docs``
    documents, then ``docs``; the steady state is the difference."""
    def tokens_of(n: int) -> int:
        return sum(pool_tokens) * (n // len(pool)) + sum(pool_tokens[:n % len(pool)])

    row = Row(name, "index-jsonl", "embedkit_index_cli", docs, tokens_of(docs))
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        runs = {}
        small = max(1, min(startup_docs, docs // 8))
        for label, n in (("startup", small), ("corpus", docs)):
            corpus = work / f"{label}.jsonl"
            _write_corpus(corpus, pool, n)
            logger.info("%s / embedkit index: %d documents (%s)", name, n, label)
            seconds, error = _index_once(folder, corpus, work)
            if error is not None:
                row.status, row.extra["stderr"] = "failed", error
                rows.add(row)
                return
            runs[label] = (seconds, tokens_of(n))
    (t_small, tok_small), (t_big, tok_big) = runs["startup"], runs["corpus"]
    row.seconds, row.tokens_per_s = t_big, tok_big / t_big
    row.extra.update(startup_docs=small, startup_seconds=round(t_small, 2),
                     startup_share=round(t_small / t_big, 3))
    if t_big > t_small and tok_big > tok_small:
        row.extra["steady_tokens_per_s"] = round((tok_big - tok_small) / (t_big - t_small))
    rows.add(row)


def host_only(args: argparse.Namespace, device: torch.device) -> None:
    """The --host-only run: its rows in their own JSON (throughput-<machine>-host.json)."""
    from benchkit.machine import load_note
    from host_throughput import run_host_only  # eval/, this script's folder, is first on sys.path

    name = device_name(device)
    threads = args.host_threads or sorted({1, os.cpu_count() or 1})
    meta = {"device": name, "cpu": cpu_name(), "cpus": os.cpu_count(), "host_only": True, "threads": threads,
            "torch": torch.__version__, "load": load_note("before the measurements", verdict=True)}
    rows = Results(args.out / f"throughput-{slug(name)}-host{'-small' if args.small else ''}.json", meta)
    run_host_only(rows, Row, args.host_texts or (2000 if args.small else 20000), threads,
                  args.repeats or (1 if args.small else 3), args.max_tokens or default_token_budget(device),
                  None if args.fake_device_rate < 0 else args.fake_device_rate)
    table = host_markdown(rows.rows)
    print(table)
    rows.save(table)
    logger.info("wrote %s", rows.path)


def host_markdown(rows: list[Row]) -> str:
    lines = ["| method | threads | texts | tokens | s | ktok/s | × raw parallel | × 1 thread | overlap |",
             "|---|---|---|---|---|---|---|---|---|"]
    raw = next((r.tokens_per_s for r in rows if r.method == "raw_tokenizer" and r.extra.get("tokenizers_parallelism")),
               None)
    for r in rows:
        extra = r.extra
        ratio = f"{r.tokens_per_s / raw:.2f}" if raw and r.tokens_per_s else "—"
        scale = f"{extra['vs_first_threads']:.2f}" if "vs_first_threads" in extra else "—"
        method = r.method + (f" (device {extra['fake_device_tokens_per_s'] / 1e3:.0f} ktok/s: "
                             f"{extra['device_seconds']:.2f} s)" if "fake_device_tokens_per_s" in extra else "")
        lines.append(f"| {method} | {extra.get('threads', '')} | {r.docs} | {r.tokens} | {r.seconds:.2f} | "
                     f"{r.tokens_per_s / 1e3:.1f} | {ratio} | {scale} | {extra.get('overlap', '—')} |")
    return "\n".join(lines)


def markdown(rows: list[Row]) -> str:
    lines = ["| config | inputs | method | docs | tokens | s | ktok/s | × baseline |",
             "|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:  # baseline: st_encode_b32 for inference, plain sentence-transformers for training
        if r.method in ("st_encode_b32", "st_train", "st_gradcache") and r.tokens_per_s:
            base[(r.config, r.inputs)] = r.tokens_per_s
    for r in rows:
        ref = base.get((r.config, r.inputs))
        ratio = f"{r.tokens_per_s / ref:.2f}" if ref and r.tokens_per_s else "—"
        speed = (f"{r.tokens_per_s / 1e3:.1f}" if r.tokens_per_s >= 1e4 else f"{r.tokens_per_s / 1e3:.3f}") \
            if r.tokens_per_s else r.status
        if r.extra.get("steady_tokens_per_s"):
            speed += f" (steady {r.extra['steady_tokens_per_s'] / 1e3:.1f})"
        secs = f"{r.seconds:.2f}" if r.seconds else "—"
        lines.append(f"| {r.config} | {r.inputs} | {r.method} | {r.docs} | {r.tokens} | {secs} | {speed} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny model, few short docs (CPU smoke run)")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS),
                        help="default: base (tiny with --small); run large as a separate call")
    parser.add_argument("--num-docs", type=int, help="docs per short input set (default 4096; 96 with --small)")
    parser.add_argument("--num-long-docs", type=int, help="docs in the long set (default 128; 16 with --small)")
    parser.add_argument("--index-docs", type=int,
                        help="docs of the end-to-end `embedkit index` row (default on CUDA: sized by "
                             "--index-seconds from the measured encode rate; else --num-docs; 0 skips it)")
    parser.add_argument("--index-seconds", type=float, default=60.0,
                        help="CUDA: size the index corpus to take about this long at the measured packed encode "
                             "rate, so that start-up is a small share of it (default 60)")
    parser.add_argument("--host-only", action="store_true",
                        help="only the host pipeline (read, tokenise, pack, pinned copy; no model) vs the raw "
                             "tokenizer, on real text (eval/host_throughput.py)")
    parser.add_argument("--host-texts", type=int,
                        help="texts of the --host-only run (default 20000; 2000 with --small)")
    parser.add_argument("--host-threads", type=int, nargs="+",
                        help="tokenising threads of the --host-only pipeline rows (default: 1 and all cores)")
    parser.add_argument("--fake-device-rate", type=float, default=0.0,
                        help="--host-only: tokens/s of the fake device of the overlap rows (default 0: as fast as the "
                             "1-thread pipeline; -1 leaves them out)")
    parser.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                        help="inference weights; auto = bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--compile", choices=["on", "off"],
                        help="also time encode_packed with torch.compile forced on/off (default: no extra row)")
    parser.add_argument("--cpu-bf16", action="store_true", help="CPU: also time encode_packed in bf16 autocast")
    parser.add_argument("--max-tokens", type=int,
                        help="token budget per batch, packed and HF sorted (default: embedkit's for the device)")
    parser.add_argument("--skip", nargs="+", default=[], choices=["st_encode_b256", "hf_sdpa_sorted"],
                        help="inference methods to leave out (to fit a slow machine)")
    parser.add_argument("--inference-only", action="store_true",
                        help="only the inference rows: no `embedkit index` row and no training (sets --index-docs, "
                             "--train-steps and --gradcache-batch to 0)")
    parser.add_argument("--sets", nargs="+", choices=sorted(INPUT_SETS), help="input sets (default: all)")
    parser.add_argument("--train-batch", type=int, help="pairs per training step (default 64; 16 with --small)")
    parser.add_argument("--train-steps", type=int, help="timed training steps (default 10; 3 with --small; 0 skips)")
    parser.add_argument("--gradcache-batch", type=int,
                        help="pairs in the GradCache (CachedMNRL) step (default 4096; 64 with --small; 0 skips it)")
    parser.add_argument("--gradcache-mini-batch", type=int, help="GradCache mini-batch (default 256; 16 with --small)")
    parser.add_argument("--repeats", type=int,
                        help="timed runs per inference method, best kept (default 2; 1 with --small)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="folder for the JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    small = args.small
    configs = args.configs or (["tiny"] if small else ["base"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.host_only:
        return host_only(args, device)
    if args.inference_only:
        args.index_docs, args.train_steps, args.gradcache_batch = 0, 0, 0
    num_docs = args.num_docs or (96 if small else 4096)
    num_long = args.num_long_docs or (16 if small else 128)
    index_docs = args.index_docs if args.index_docs is not None else (
        -1 if device.type == "cuda" and not small else num_docs)  # -1: sized from the measured encode rate
    repeats = args.repeats or (1 if small else 2)
    train_batch = args.train_batch or (16 if small else 64)
    train_steps = (3 if small else 10) if args.train_steps is None else args.train_steps
    gradcache_batch = (64 if small else 4096) if args.gradcache_batch is None else args.gradcache_batch
    gradcache_mini = args.gradcache_mini_batch or (16 if small else 256)
    compile = {"on": True, "off": False}.get(args.compile)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(
        args.dtype, torch.bfloat16 if device.type == "cuda" else torch.float32)

    words, tokenizer = make_vocabulary()
    specs = SMALL_INPUT_SETS if small else INPUT_SETS
    sets = {name: make_texts(words, num_long if name.startswith("long") else num_docs, spec, seed=i)
            for i, (name, spec) in enumerate(specs.items()) if not args.sets or name in args.sets}
    index_pool = make_texts(words, min(4096, max(index_docs, 256)), specs["short-variable"], seed=20)
    pairs = max(train_batch * (train_steps + 2), gradcache_batch + 2 * gradcache_mini)
    queries = make_texts(words, pairs, (32, 8, 8, 64), seed=10)
    passages = make_texts(words, pairs, specs["short-variable"], seed=11)

    import sentence_transformers
    import transformers
    from benchkit.machine import load_note

    name = device_name(device)
    meta = {"device": name, "dtype": str(dtype), "small": small, "max_tokens": args.max_tokens,
            "num_docs": num_docs, "num_long_docs": num_long, "index_docs": index_docs,
            "train_batch": train_batch, "train_steps": train_steps, "gradcache_batch": gradcache_batch,
            "gradcache_mini_batch": gradcache_mini, "repeats": repeats, "compile": args.compile,
            "cpu_bf16": args.cpu_bf16, "skip": args.skip, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load": load_note("before the measurements", verdict=True),
            "cpu": cpu_name(), "cpu_bf16_features": list(cpu_bf16_features()),
            "transformers": transformers.__version__, "sentence_transformers": sentence_transformers.__version__,
            "input_sets": {k: dict(zip(("mean", "std", "min", "max"), v)) for k, v in specs.items()}}
    rows = Results(args.out / f"throughput-{slug(name)}-{'-'.join(configs)}{'-small' if small else ''}.json", meta)
    for config in configs:
        with tempfile.TemporaryDirectory() as folder:
            st_model = build_model(config, tokenizer, Path(folder), device, dtype)
            run_inference(config, st_model, sets, args.max_tokens, repeats, rows, compile=compile,
                          cpu_bf16=args.cpu_bf16, skip=tuple(args.skip))
            if index_docs:  # before training: in a GPU session cut short, the headline rows come first
                pool_tokens = [len(x) for x in tokenizer(index_pool, truncation=True, max_length=8192)["input_ids"]]
                docs = index_docs
                if docs < 0:  # as many documents as the measured packed rate encodes in --index-seconds
                    rate = max((r.tokens_per_s or 0 for r in rows.rows if r.config == config
                                and r.method == "embedkit_packed" and r.inputs == "short-variable"), default=0)
                    docs = int(args.index_seconds * (rate or 1e6) / (sum(pool_tokens) / len(pool_tokens)))
                run_index(config, Path(folder), index_pool, pool_tokens, docs, rows)
            if train_steps or gradcache_batch:
                run_training(config, st_model, queries, passages, train_batch, train_steps, rows,
                             gradcache_batch=gradcache_batch, gradcache_mini_batch=gradcache_mini)
            del st_model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    rows.meta["load_end"] = load_note("after the measurements")
    table = markdown(rows.rows)
    print(table)
    print(rows.meta["load"], "|", rows.meta["load_end"], "|", name, f"{os.cpu_count()} CPUs", file=sys.stderr)
    rows.save(table)
    logger.info("wrote %s", rows.path)


if __name__ == "__main__":
    main()
