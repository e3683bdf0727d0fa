"""The recipe's model and training sections: backbone, ColBERT and sparse settings, data, loss and optimisation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from embedkit.config.fields import PACKED_HELP, Bounded, PackedMode, _help


@dataclass
class ModelConfig(Bounded):
    name: str = _help("Hub id or local path of the backbone or of a sentence-transformers/PyLate model.",
                      "answerdotai/ModernBERT-base")
    max_seq_length: int | None = _help("Longest input in tokens (dense); longer texts are truncated. Default: "
                                       "the model's own limit (all-MiniLM-L6-v2: 256).", None, low=1)
    pooling: Literal["mean", "cls"] = _help("How token vectors become one vector (dense, raw backbones).",
                                            "mean")
    similarity: Literal["cosine", "dot"] = _help("Score function; cosine normalises embeddings.", "cosine")
    query_prompt: str = _help("Text prepended to every query (e.g. 'search_query: ').", "")
    document_prompt: str = _help("Text prepended to every document.", "")
    trust_remote_code: bool = _help("Run code shipped with a hub model. Off unless you trust it.", False)


# What a fresh ColBERT (a backbone or a dense sentence-transformers model) gets for each ColbertConfig field left
# null; a ColBERT checkpoint keeps its own values (PyLate's and ColBERT's classic settings).
COLBERT_FRESH_DEFAULTS = {"embedding_dim": 128, "query_length": 32, "document_length": 180,
                          "query_prefix": "[Q] ", "document_prefix": "[D] "}


@dataclass
class ColbertConfig(Bounded):
    library: Literal["auto", "sentence-transformers", "pylate"] = _help(
        "ColBERT library: sentence-transformers (MultiVectorEncoder, sentence-transformers >= 6) or pylate "
        "(PyLate, in an environment with embedkit[pylate]); auto: sentence-transformers when it has "
        "MultiVectorEncoder, else pylate.", "auto", flag="--colbert-library")
    embedding_dim: int | None = _help("Size of the per-token projection; null = the checkpoint's own (128 for a "
                                      "fresh projection).", None, low=1)
    query_length: int | None = _help("Query length in tokens, padded with [MASK] (query expansion); null = the "
                                     "checkpoint's own (32 for a backbone).", None, low=1)
    document_length: int | None = _help("Document length in tokens (up to the backbone's limit, 8192 for "
                                        "ModernBERT); null = the checkpoint's own (180 for a backbone).", None, low=1)
    query_prefix: str | None = _help("Marker prepended to queries; null = the checkpoint's own ('[Q] ' for a "
                                     "backbone).", None)
    document_prefix: str | None = _help("Marker prepended to documents; null = the checkpoint's own ('[D] ' for a "
                                        "backbone).", None)

    def for_fresh_model(self) -> ColbertConfig:
        """This config with every null field set to what a fresh ColBERT gets (``COLBERT_FRESH_DEFAULTS``)."""
        return dataclasses.replace(self, **{k: v for k, v in COLBERT_FRESH_DEFAULTS.items()
                                            if getattr(self, k) is None})


# Bounds of the SPLADE regulariser weights (FLOPS): above them the loss is the regulariser alone and every
# vector collapses to nothing; 0 turns a regulariser off (an inference-free model's queries need none).
REGULARIZER_MAX = 1.0


@dataclass
class SparseConfig:
    architecture: Literal["splade", "inference-free", "csr"] = _help(
        "What a backbone becomes (a saved sparse model keeps its own): splade (MLM head + SPLADE max pooling, "
        "queries and documents through the model), inference-free (documents through the model, queries by a "
        "static per-token weight: no model at query time), csr (pooled dense vector + a sparse autoencoder).",
        "splade")
    document_regularizer_weight: float = _help(
        "Weight of the FLOPS regulariser on documents (SPLADE's lambda_d): higher gives fewer active terms per "
        f"document, at some accuracy. In [0, {REGULARIZER_MAX}]; sentence-transformers' examples use 3e-3.", 3e-3)
    query_regularizer_weight: float = _help(
        "Weight of the FLOPS regulariser on queries (lambda_q), usually above the documents' (queries are "
        f"encoded per search). In [0, {REGULARIZER_MAX}]; 0 for inference-free models.", 5e-3)


@dataclass
class ColumnsConfig:
    query: str = _help("Column holding the query / anchor text.", "query")
    positive: str = _help("Column holding the relevant document.", "positive")
    negatives: list[str] | None = _help(
        "Columns holding hard negatives. Default: every column whose name starts with 'negative'.", None)


@dataclass
class SourceConfig(Bounded):
    train: str | None = _help("Training data: hub dataset id, or a local JSONL/Parquet/CSV file or folder.",
                              None)
    subset: str | None = _help("Hub dataset configuration (e.g. 'triplet-hard').", None)
    split: str = _help("Split to read.", "train")
    max_samples: int | None = _help("Use at most this many rows (the first ones; the trainer shuffles them).", None,
                                    low=1)
    columns: ColumnsConfig = _help("Which columns hold query, positive and negatives.", factory=ColumnsConfig)


@dataclass
class DataConfig(SourceConfig):
    format: Literal["pairs", "distillation"] = _help(
        "pairs: (query, positive, negatives...) rows; distillation: queries/documents/train subsets with "
        "teacher scores (the layout of lightonai/ms-marco-en-bge).", "pairs")
    mix: list[SourceConfig] = _help("More training sources, sampled together with the main one.", factory=list)
    sampling: Literal["proportional", "round_robin"] = _help("How batches are drawn across sources.",
                                                             "proportional")


@dataclass
class LossConfig(Bounded):
    name: str | None = _help("The training loss: mnrl or cached_mnrl for dense models; contrastive, "
                             "cached_contrastive or distillation for colbert; splade, cached_splade, "
                             "splade_distillation or csr (sparse.architecture: csr) for sparse. Default: mnrl for "
                             "dense, contrastive for colbert, splade for sparse, the kind's distillation loss when "
                             "data.format is distillation.",
                             None)
    mini_batch_size: int = _help("Forward chunk of the cached (GradCache) losses; bounds memory, not the batch.",
                                 32, low=1)
    scale: float = _help("Inverse temperature of the in-batch softmax (dense).", 20.0, above=0)
    gather_across_devices: bool = _help("Share in-batch negatives across processes under torchrun.", True)
    matryoshka_dims: list[int] = _help("Also train these truncated embedding sizes (Matryoshka). Default: none, "
                                       "the full size only.", factory=list)


@dataclass
class TrainingConfig(Bounded):
    learning_rate: float = _help("Peak learning rate.", 8e-5, above=0)
    batch_size: int = _help("Rows per device per step; in-batch negatives come from the whole batch.", 32, low=1)
    gradient_accumulation_steps: int = _help("Steps accumulated before an update (negatives are not shared "
                                             "across them: prefer a cached loss).", 1, low=1)
    epochs: float = _help("Passes over the training data.", 1.0, above=0)
    max_steps: int = _help("Stop after this many updates; -1 runs every epoch.", -1, low=-1)
    warmup_ratio: float = _help("Fraction of updates spent warming the learning rate up.", 0.05, low=0, below=1)
    weight_decay: float = _help("AdamW weight decay.", 0.01, low=0)
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = _help("Learning-rate schedule.", "linear")
    bf16: bool = _help("Train in bfloat16 mixed precision (GPU).", False)
    packed: PackedMode = _help(PACKED_HELP.format(what="in training"), "auto", renamed_from="unpadded")
    seed: int = _help("Seed for shuffling and initialisation.", 42, low=0)
    logging_steps: int = _help("Log the loss every N updates.", 10, low=1)
    save_steps: int = _help("Checkpoint every N updates (kept until training finishes).", 500, low=1)
    eval_steps: int = _help("Score eval.during_training every N updates; 0 scores it once, at the end.", 0, low=0)
    resume: bool = _help("Continue from the last checkpoint of an interrupted run in the same output_dir.",
                         True)
    dataloader_num_workers: int = _help("Worker processes feeding batches.", 0, low=0)
