"""Recipes: YAML files mapped onto typed dataclasses, validated before any work starts.

Every recipe key is one dataclass field below; defaults live only here. Unknown keys fail with the
list of valid ones, wrong types name the field, and ``--set a.b=value`` overrides go through the same
validation as the file. A field's ``help`` is prose for both the recipe reference and the command-line
help; ``flag_help`` replaces it for a flag whose meaning is the field's opposite (``--no-cache``), and
``group`` names the option group a flag is listed under.

A choice's names (backends, kinds, fusion methods, rerankers, ColBERT libraries, losses) live in its registry;
the ``Literal`` types here spell them for type checks, flags and the recipe reference, and
tests/test_registries.py keeps each equal to its registry. Checks that need a registry (the loss fits the kind,
the ColBERT library is usable here) run in :mod:`embedkit.train.recipes`, which every entry point loads recipes
with: config sits below every registry and imports none.

Where a recipe's stages write: the model in ``output_dir``; the index, results and report in relative
``index.output_dir``, ``eval.output_dir`` and ``report.output_dir`` under one run folder beside it
(:func:`run_folder`), so that two recipes never share, or overwrite, each other's outputs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from embedkit.errors import EmbedkitError

Kind = Literal["dense", "colbert", "sparse"]
Quantization = Literal["none", "int8", "binary"]  # names of embedkit.index.registry.QUANTIZATIONS
QUANTIZATION_GROUP = "quantization (dense models: backends flat, hnsw)"
# The packed (unpadded) ModernBERT forward: auto uses it for ModernBERT models and falls back to Hugging Face's
# padded forward where it cannot be used or its first-use check fails; on insists (those are errors); off never.
Unpadded = Literal["auto", "on", "off"]
UNPADDED_HELP = ("Packed (unpadded) ModernBERT forward {what}: auto uses it for ModernBERT (checked against HF on "
                 "first use, HF's forward on a mismatch), on makes a mismatch an error, off keeps HF's padded forward.")


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING,
          flag: str | None = None, flag_help: str | None = None, group: str | None = None,
          metavar: str | None = None, low: float | None = None, high: float | None = None,
          above: float | None = None, below: float | None = None) -> Any:
    """A field with its help text; ``flag`` names its command-line flag where ``--field-name`` would not do,
    ``flag_help`` is the flag's own help where it differs (a flag that turns a default-on setting off),
    ``group`` the option group of the flag (on a section: of all its flags), ``metavar`` its value's name.
    ``low``/``high`` (inclusive) and ``above``/``below`` (exclusive) bound a number: :class:`Bounded` checks
    them for recipes, ``--set``, flags and Python alike (null, where allowed, is never out of bounds)."""
    options = (("flag", flag), ("flag_help", flag_help), ("group", group), ("metavar", metavar), ("low", low),
               ("high", high), ("above", above), ("below", below))
    metadata = {"help": text, **{k: v for k, v in options if v is not None}}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def bound_error(name: str, value: Any, f: dataclasses.Field) -> str | None:
    """What is wrong with ``value`` for the field ``f`` given its bounds, or None.

    >>> bound_error("k", 0, dataclasses.field(metadata={"low": 1}))
    'k: must be at least 1, got 0'
    """
    meta = f.metadata
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    shown = f"{value}" if not isinstance(value, int) or abs(value) < 10**18 else "a number of over 18 digits"
    if "low" in meta and value < meta["low"]:
        return f"{name}: must be at least {meta['low']}, got {shown}"
    if "high" in meta and value > meta["high"]:
        return f"{name}: must be at most {meta['high']}, got {shown}"
    if "above" in meta and not value > meta["above"]:
        return f"{name}: must be above {meta['above']}, got {shown}"
    if "below" in meta and not value < meta["below"]:
        return f"{name}: must be below {meta['below']}, got {shown}"
    return None


class Bounded:
    """Config sections whose numeric fields carry bounds (``_help(..., low=1)``): checked on construction, so a
    recipe, a ``--set``, a flag and a Python caller all get the same one-line error."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            problem = bound_error(f.name, getattr(self, f.name), f)
            if problem:
                raise EmbedkitError(problem)


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
    unpadded: Unpadded = _help(UNPADDED_HELP.format(what="in training"), "auto")
    seed: int = _help("Seed for shuffling and initialisation.", 42, low=0)
    logging_steps: int = _help("Log the loss every N updates.", 10, low=1)
    save_steps: int = _help("Checkpoint every N updates (kept until training finishes).", 500, low=1)
    eval_steps: int = _help("Score eval.during_training every N updates; 0 scores it once, at the end.", 0, low=0)
    resume: bool = _help("Continue from the last checkpoint of an interrupted run in the same output_dir.",
                         True)
    dataloader_num_workers: int = _help("Worker processes feeding batches.", 0, low=0)


IndexBackend = Literal["auto", "flat", "hnsw", "ivfpq", "plaid", "exact", "bm25", "qdrant", "sparse-exact",
                       "seismic"]


@dataclass
class FaissConfig(Bounded):
    hnsw_m: int = _help("hnsw: graph neighbours per node.", 32, low=2)
    ef_search: int = _help("hnsw: candidates kept while searching; higher finds more, slower.", 128, low=1)
    nlist: int | None = _help("ivfpq: inverted lists. Default: 4·sqrt(documents), capped by the training sample.",
                              None, low=1)
    pq_m: int | None = _help("ivfpq: product-quantiser parts (must divide the dimension). Default: dimension / 4.",
                             None, low=1)
    nprobe: int = _help("ivfpq: lists probed per query.", 32, low=1)
    train_sample: int = _help("ivfpq: vectors the quantisers are trained on.", 200_000, low=1)


@dataclass
class PlaidConfig(Bounded):
    nbits: int = _help("Bits per residual dimension.", 4, low=1, high=8)
    kmeans_niters: int = _help("k-means iterations for the centroids.", 4, low=1)
    n_ivf_probe: int = _help("Centroids probed per query token when searching.", 8, low=1)
    n_full_scores: int = _help("Candidates scored in full (decompressed MaxSim) when searching.", 4096, low=1)
    seed: int = _help("k-means seed.", 42, low=0)


@dataclass
class QdrantConfig(Bounded):
    path: str | None = _help(
        "The local shard (Qdrant Edge, the server's engine in-process). Default: qdrant/ inside the index folder.",
        None, flag="--qdrant-path", metavar="DIR")
    url: str | None = _help(
        "A Qdrant server or cluster (http(s)://host:6333) reached with qdrant-client instead of a local shard. "
        "Its API key is read from the environment variable api_key_env, never from a recipe or a manifest.", None,
        flag="--qdrant-url", metavar="URL")
    api_key_env: str = _help("The environment variable holding the server's API key (unset: no key).",
                             "QDRANT_API_KEY", flag="--qdrant-api-key-env", metavar="NAME")
    collection: str = _help("The collection's name (on a server; a local shard holds one).", "embedkit",
                            flag="--qdrant-collection", metavar="NAME")
    hnsw_m: int = _help("HNSW graph neighbours per node (Qdrant builds the graph past its full-scan threshold).",
                        16, flag="--qdrant-hnsw-m", low=0)
    ef_construct: int = _help("HNSW candidates kept while building.", 100, flag="--qdrant-ef-construct", low=1)
    ef_search: int | None = _help("HNSW candidates kept while searching. Default: Qdrant's own.", None,
                                  flag="--qdrant-ef-search", low=1)
    quantization: Quantization = _help(
        "Qdrant's own vector quantization (int8: scalar, binary: binary), with Qdrant's rescoring of the "
        "original vectors.", "none", flag="--qdrant-quantization")
    upload_batch: int = _help("Points per upsert while uploading (bounds memory and the work a kill loses).", 256,
                              flag="--qdrant-upload-batch", low=1)
    shard_number: int = _help("Server collections: shards the collection is split into across the cluster.", 1,
                              flag="--qdrant-shards", low=1)
    replication_factor: int = _help("Server collections: copies of each shard.", 1,
                                    flag="--qdrant-replicas", low=1)
    timeout: int = _help("Server requests: seconds before a request fails.", 30, flag="--qdrant-timeout", low=1)


@dataclass
class SeismicConfig(Bounded):
    n_postings: int = _help("Average postings kept per term (Seismic's static pruning).", 3500, low=1)
    centroid_fraction: float = _help("Fraction of a posting list's documents used as block centroids.", 0.1,
                                     above=0, high=1)
    summary_energy: float = _help("Share of a block's weight its summary keeps.", 0.4, above=0, high=1)
    query_cut: int = _help("Largest query terms considered per search.", 20, low=1)
    heap_factor: float = _help("Skip a block when its summary score is below this share of the k-th best.", 0.7,
                               above=0, high=1)


@dataclass
class EncodeSettings(Bounded):

    """How texts are encoded for an index (the index stage, and the indexes evaluation builds)."""

    batch_size: int = _help("Encoding batch size.", 64, low=1)
    max_length: int | None = _help("Document length in tokens. Default: the model's own.", None, low=1,
                                   high=1 << 20)
    truncate_dim: int | None = _help("Dense Matryoshka models: keep the first N dimensions.", None, low=1)
    precision: Literal["fp32", "bf16", "int8"] = _help(
        "Compute precision of encoding. bf16: the transformer's weights cast to bfloat16 once (torch; openvino: its "
        "bf16 inference), for CPUs with AVX512-BF16 or AMX (refused elsewhere) and GPUs; int8: dynamic "
        "quantization (model_backend onnx or openvino). Checked against fp32 on the first texts. An index records "
        "it and encodes its queries the same way.", "fp32")
    model_backend: Literal["torch", "onnx", "openvino"] = _help(
        "The runtime of the model's transformer: torch, or an ONNX export run by ONNX Runtime (onnx) or OpenVINO "
        "(openvino), exported once into embedkit's cache and checked against torch fp32 on the first texts "
        "(an error if it differs). Dense, colbert and the cross-encoder reranker.", "torch")
    unpadded: Unpadded = _help(UNPADDED_HELP.format(what="when encoding") + " The vectors agree either way (to "
                               "float tolerance), so no index or result records it.", "auto")


# EncodeSettings fields that choose how vectors are computed, never which (the packed forward is checked against
# HF's): no index manifest, evaluation cache or results key records them, so they never make an artefact stale.
NOT_RECORDED = ("unpadded", "model_backend")
# IndexSettings fields added after indexes, results and cached indexes were first keyed: recorded only where they
# differ from their defaults, so that an artefact keyed before they existed keeps its key (and stays current).
RECORDED_WHEN_SET = ("quantization", "rescore_multiplier", "shortlist_dim", "qdrant", "seismic",
                     "auto_sparse_exact_max_documents")


def recorded_settings(settings: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """``asdict(settings)`` without the fields in ``skip`` and without RECORDED_WHEN_SET fields at their defaults."""
    defaults = {f.name: default_of(f) for f in dataclasses.fields(settings) if f.name in RECORDED_WHEN_SET}
    defaults = {k: _plain(v) for k, v in defaults.items()}
    return {key: value for key, value in dataclasses.asdict(settings).items()
            if key not in skip and not (key in defaults and value == defaults[key])}


def _plain(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


@dataclass
class IndexSettings(EncodeSettings):
    """How an index is built: the backend and its options."""

    backend: IndexBackend = _help(
        "How the index is searched: flat (exact), hnsw or ivfpq for dense models (FAISS); plaid or exact "
        "(brute-force MaxSim) for colbert models; sparse-exact or seismic for sparse models; bm25 needs no model; "
        "qdrant (dense and colbert: a local Qdrant shard or a Qdrant server, see index.qdrant). auto is flat for "
        "dense models, for colbert exact up to index.auto_exact_max_documents documents and plaid above, for "
        "sparse sparse-exact up to index.auto_sparse_exact_max_documents and seismic above.", "auto",
        group="index backend")
    auto_exact_max_documents: int = _help(
        "Colbert models with backend auto: the largest corpus searched by exact MaxSim (the measured "
        "crossover, see docs/measurements).", 10_000, group="index backend", low=0)
    shard_size: int = _help("Documents per resumable shard.", 8192, low=1)
    keep_shards: bool = _help(
        "Keep the encoded vectors in the index folder (shards/), so that a rebuild with another backend or "
        "other backend options encodes nothing; they take about the disk space of a flat index.", True,
        flag="--drop-shards", flag_help="Delete the encoded vectors (shards/) once the index is built: less disk, "
        "but a rebuild with another backend encodes the corpus again.")
    faiss: FaissConfig = _help("FAISS options.", factory=FaissConfig,
                               group="FAISS options (dense models: backends flat, hnsw, ivfpq)")
    quantization: Quantization = _help(
        "Dense models, backends flat and hnsw: how the first pass stores each vector. none: float32; int8: one "
        "byte per dimension (FAISS scalar quantizer, per-dimension min/max ranges from a sample, as "
        "sentence-transformers' quantize_embeddings computes them, recorded in the manifest); binary: one bit "
        "per dimension (FAISS binary index, Hamming distance), 32x smaller. Candidates are rescored with the "
        "full-precision vectors (vectors.npy, memory-mapped: read from disk, not held in memory).", "none",
        group=QUANTIZATION_GROUP)
    rescore_multiplier: int = _help(
        "Quantized or shortlisted indexes: k x this many first-pass candidates are rescored with the full "
        "query and document vectors (at least 1; 4 kept 0.99 of flat's nDCG@10 with binary in "
        "docs/measurements/quantization.md).", 4, group=QUANTIZATION_GROUP, low=1)
    shortlist_dim: int | None = _help(
        "Matryoshka models: search the first N dimensions (renormalised) for the shortlist, then rescore it on "
        "every dimension. Default: the full size.", None, group=QUANTIZATION_GROUP,
        low=1)
    plaid: PlaidConfig = _help("PLAID options.", factory=PlaidConfig,
                               group="PLAID options (colbert models: backend plaid)")
    qdrant: QdrantConfig = _help("Qdrant options.", factory=QdrantConfig,
                                 group="Qdrant options (backend qdrant: dense and colbert models)")
    seismic: SeismicConfig = _help("Seismic options.", factory=SeismicConfig,
                                   group="Seismic options (sparse models: backend seismic)")
    auto_sparse_exact_max_documents: int = _help(
        "Sparse models with backend auto: the largest corpus searched by exact sparse scoring (sparse-exact); "
        "seismic above. Exact's median latency was still below Seismic's at 200,000 documents on a 2-core CPU, "
        "Seismic's well below exact's at 1,000,000 (docs/measurements/sparse.md).", 200_000, group="index backend")


@dataclass
class IndexConfig(IndexSettings):
    corpus: str | None = _help("The corpus to index: a BEIR folder, a .jsonl or .parquet file, or a Hugging Face "
                               "dataset id. Without one, embedkit run has no index stage.", None,
                               group="corpus and index folder", metavar="PATH")
    subset: str | None = _help("Hugging Face dataset configuration of the corpus.", None,
                               group="corpus and index folder")
    split: str | None = _help("Hugging Face dataset split of the corpus.", None, group="corpus and index folder")
    output_dir: str = _help("Where the index folder is written; a relative path lies in the run folder.", "index",
                            flag="--index-dir", flag_help="The index folder to write (or, with --add and --delete, "
                            "to change); default: index.", group="corpus and index folder", metavar="DIR")


@dataclass
class RetrieveConfig(Bounded):
    """Fusion of several indexes and a second-stage reranker over any index (search, eval and serve)."""

    fuse_with: list[str] = _help("Other indexes over the same corpus to fuse with the searched one: index folders, "
                                 "or bm25 (built in memory from the index's own documents).", factory=list,
                                 group="fusion", metavar="INDEX")
    fusion: Literal["rrf", "weighted"] = _help(
        "rrf: reciprocal rank fusion; weighted: a weighted sum of min-max normalised scores.", "rrf", group="fusion")
    rrf_k: int = _help("The constant k of RRF's 1/(k + rank) (60 in Cormack et al. 2009).", 60, group="fusion", low=0)
    weights: list[float] | None = _help("Weighted fusion: one weight per index, the searched one first. Default: "
                                        "equal weights (in eval: chosen on half of the queries, scored on the "
                                        "other half).", None, group="fusion")
    fusion_depth: int = _help("Candidates taken from each fused index per query (at least k).", 100, group="fusion",
                              low=1)
    rerank: Literal["none", "colbert", "cross-encoder"] = _help(
        "A second stage over the first stage's top rerank_top_n: ColBERT MaxSim or a CrossEncoder.", "none",
        group="reranking")
    rerank_model: str | None = _help("The reranker: a ColBERT model (colbert) or a CrossEncoder. Default for "
                                     "colbert: the model of rerank_index.", None, group="reranking", metavar="MODEL")
    rerank_index: str | None = _help("colbert: an exact-MaxSim colbert index (backend exact) over the same corpus, "
                                     "whose stored token vectors are read instead of encoding documents per query.",
                                     None, group="reranking", metavar="DIR")
    rerank_top_n: int = _help("First-stage candidates reranked per query.", 100, group="reranking", low=1)
    rerank_batch_size: int = _help("Batch size of the reranker's encoding and scoring.", 32, group="reranking", low=1)


@dataclass
class EvalOptions(EncodeSettings):
    """How one model is scored on one dataset (``embedkit eval`` flags and the recipe's ``eval:``)."""

    kind: Kind | None = _help("dense, colbert or sparse. Default: read from the model folder (in embedkit run: the "
                              "recipe's kind).", None)
    split: str = _help("The qrels split to score.", "test")
    protocol: Literal["beir", "mteb"] = _help(
        "Whose conventions to score by. beir: hits on the query's own id are dropped on every set, as BEIR does, "
        "and CoIR sets (CodeSearchNet, StackOverflow-QA) read a document's text without its title, as CoIR and "
        "the ModernBERT paper do. mteb: self-hits are dropped only where the MTEB task opts in (ArguAna, Quora, "
        "FiQA, FEVER, MS MARCO in mteb 2.26) and titles are always joined to the text.", "beir")
    k: int = _help("Documents retrieved per query: recall and MAP are measured at this depth (recall@k, map@k), "
                   "nDCG and MRR at 10 (at k when k is smaller).", 100, flag="-k", low=1,
                   high=10_000)
    long_documents: Literal["truncate", "chunk-maxpool"] = _help(
        "truncate documents at the model's length, or split them into windows and keep each document's best "
        "window.", "truncate")
    use_cache: bool = _help("Keep the corpus indexes evaluation builds in embedkit's cache folder and reuse them.",
                            True, flag="--no-cache", flag_help="Build the corpus index in a temporary folder and "
                            "delete it afterwards, instead of keeping it in embedkit's cache folder for the next "
                            "run.")
    per_query: bool = _help("Include per-query scores in the results JSON.", False)
    retrieve: RetrieveConfig = _help("Fusion and reranking applied to the evaluated index.",
                                     factory=RetrieveConfig)


MldrSetting = Literal["ood", "id"]  # out of domain, or in domain (fine-tuned on MLDR's training split)


@dataclass
class EvalConfig(EvalOptions):
    data: list[str] = _help("BEIR-format folders or benchmark names (embedkit benchmarks lists them) scored by "
                            "the eval stage.", factory=list)
    during_training: str | None = _help("A small BEIR-format folder scored while training (nDCG@10 logged, the "
                                        "best checkpoint kept).", None)
    mldr_setting: MldrSetting = _help("MLDR results: id if the model was fine-tuned on MLDR's training "
                                               "split (the paper's MLDR-ID column), else ood.", "ood")
    output_dir: str = _help("Where one results JSON (and TREC run) per model and dataset is written; a relative "
                            "path lies in the run folder.", "eval")
    benchmark_cache: str | None = _help("Folder of downloaded benchmark sets. Default: benchmarks/ in embedkit's "
                                        "cache folder.", None)


ReportMetric = Literal["ndcg@10", "recall@k", "mrr@10"]


@dataclass
class ReportConfig:
    output_dir: str = _help("Where report.md and report.png are written; a relative path lies in the run folder.",
                            "report", flag="--output", flag_help="The folder report.md and report.png are "
                            "written to (default: report).", metavar="DIR")
    metric: ReportMetric = _help("The metric the report compares: nDCG@10, recall at the depth each result was "
                                 "retrieved to (recall@k), or MRR@10. The paper comparison is nDCG@10 only.",
                                 "ndcg@10")
    baselines: list[str] = _help("Also score these models on eval.data for the report: bm25, a base model's folder "
                                 "or Hugging Face id.", factory=list)


API_KEY_ENV = "EMBEDKIT_API_KEY"


@dataclass
class ServeConfig(Bounded):
    """``embedkit serve``: address, security, limits, batching and threads (one flag per field; not a recipe
    section). Limits left at null follow the served model and index (see docs/guides/serving.md)."""

    host: str = _help("Address to bind. 127.0.0.1 (loopback) is reachable from this machine only; 0.0.0.0 or a "
                      "public address exposes the server: set an API key.", "127.0.0.1")
    port: int = _help("TCP port; it is bound before the model loads, so a port in use fails at once.", 8000,
                      low=0, high=65535)
    api_key: str | None = _help(f"Bearer token every route but /health requires (Authorization: Bearer KEY). "
                                f"Prefer the {API_KEY_ENV} environment variable: a flag shows in `ps`.", None)
    allowed_hosts: list[str] = _help(
        "Host header values accepted besides the bound address (port ignored). Bound to loopback, only "
        "localhost, 127.0.0.1, [::1] and these are served (a DNS-rebinding page sends its own name); elsewhere "
        "any Host is served unless this is set. '*' turns the check off.", factory=list, flag="--allowed-host")
    cors_origins: list[str] = _help("Browser origins allowed to call the API (CORS), e.g. https://app.example; "
                                    "none: no CORS headers, browsers on other origins cannot read replies.",
                                    factory=list, flag="--cors-origin")
    docs: bool = _help("Serve the interactive API docs and schema (/docs, /redoc, /openapi.json).", False)
    served_model_name: str | None = _help(
        "Model id of /v1/models and the 'model' field clients send; null = the model folder's name or hub id.",
        None)
    threads: int = _help(
        "Threads for torch and FAISS (the tokenizer keeps one). 1 keeps single-query latency stable on a machine "
        "shared with other work (with more, torch's threads wait for busy cores: 15 ms queries took up to 0.5 s "
        "in our measurements); raise it on a machine the server has to itself.", 1, low=1)
    max_batch: int = _help("Most texts (queries, inputs, documents) computed together from concurrent requests "
                           "in one model call (its tokens are bounded by --slice-ms); a larger request is computed in "
                           "slices, in turn with the others.", 64, low=1)
    slice_ms: float = _help("Model time one batch aims at: batches are filled by estimated tokens (about 4 "
                            "characters each) up to what the model computes in this long at the rate measured on "
                            "recent batches, so a large request is computed in slices of about this long and a "
                            "single query waits about one slice beside it.", 100.0, above=0)
    max_wait_ms: float = _help("How long a batch waits for more requests to join it, only while others are "
                               "already queued (a lone request starts at once).", 2.0, low=0)
    max_queue: int = _help("Texts waiting for the model across all requests; a request that would exceed it "
                           "gets 503 with Retry-After.", 2048, low=1)
    request_timeout: float = _help("Seconds a request may take (reading its body, waiting, computing) before "
                                   "it is answered 503 (or 408 for a slow body) and its work dropped. A request "
                                   "that cannot finish in time at the measured rate is refused when it arrives "
                                   "(503 with Retry-After, or 413 if it alone takes longer). 180 s keeps the "
                                   "largest request the other limits allow (1,024 texts of 2,560 characters: 105 s "
                                   "with MiniLM on 2 cores shared with other jobs) reachable.", 180.0, above=0)
    max_body_bytes: int = _help("Largest request body (413 above it, refused before it is read).", 4 * 1024 * 1024,
                                low=1)
    max_header_bytes: int = _help("Largest request head (request line and headers together), counted as it "
                                  "arrives: 431 and the connection closed past it, so no more is ever held.",
                                  64 * 1024, low=1024)
    max_headers: int = _help("Most header lines in one request (431 above it).", 100, low=1)
    header_timeout: float = _help("Seconds a connection has to send a complete request head (from connecting, and "
                                  "after each reply); past it the connection is closed (408 if it sent part of "
                                  "one). Bodies have --request-timeout.", 10.0, above=0)
    max_connections: int = _help("Open connections held at once; one more is answered 503 with Retry-After and "
                                 "closed.", 1024, low=1)
    max_texts: int = _help("Texts per request: /search queries, /v1/embeddings inputs, /rerank documents.", 1024, low=1)
    max_chars: int | None = _help("Characters per text; null = 10 per token of the model's max_seq_length "
                                  "(all-MiniLM-L6-v2: 256 tokens, 2560 characters), past which it reads nothing.",
                                  None, low=1)
    max_k: int = _help("Largest k of /search.", 1000, low=1)
    max_hits: int | None = _help("Largest queries × k of one /search request; null = what keeps a reply with "
                                 "texts near 8 MB at the index's mean document size (1,000 to 100,000).", None, low=1)
    access_log: bool = _help("Log one line per request (client, method, path, status, milliseconds, bytes) at "
                             "info level on stderr.", True, flag="--no-access-log",
                             flag_help="Turn off the access log: no line per request (by default each request logs "
                             "client, method, path, status, milliseconds and bytes on stderr).")

    def __post_init__(self) -> None:
        super().__post_init__()  # the fields' bounds
        if self.api_key is not None and (not self.api_key.strip() or not self.api_key.isprintable()):
            raise EmbedkitError("serve api_key: must be printable text, not empty")


@dataclass
class MiningOptions(Bounded):
    """``embedkit mine``: which candidates become hard negatives (one flag per field; not a recipe section).

    Only ranks in ``[range_min, range_max)`` are considered, the query's own positives never; a candidate must
    pass every margin and score bound that is set. Rows left with fewer than ``num_negatives`` are dropped.
    """

    num_negatives: int = _help("Negatives written per row.", 3, low=1)
    range_min: int = _help("Skip this many top candidates (near-duplicates, unlabeled positives).", 0, low=0)
    range_max: int = _help("Consider candidates up to this rank.", 50, low=1)
    relative_margin: float | None = _help(
        "Keep a negative only if it scores at most (1 - margin) x the positive's score (0.05: at most 0.95 x).",
        None, flag="--margin", metavar="MARGIN", low=0, high=1)
    absolute_margin: float | None = _help("Keep a negative only if it scores at most the positive's score minus "
                                          "this.", None, metavar="MARGIN", low=0)
    max_score: float | None = _help("Drop candidates scoring above this.", None, metavar="SCORE")
    min_score: float | None = _help("Drop candidates scoring below this.", None, metavar="SCORE")
    sampling: Literal["top", "random"] = _help("top: the best-scoring valid candidates; random: any valid ones.",
                                               "top")
    cross_encoder: str | None = _help("Rescore the candidates (and the positive) with this CrossEncoder before the "
                                      "filters, as the NV-Retriever paper recommends.", None, metavar="MODEL")
    teacher_scores: bool = _help(
        "Write teacher scores for distillation instead of pairs: --output is then a new folder of queries.jsonl, "
        "documents.jsonl and train.jsonl (query_id, document_ids: the positive then the negatives, scores: the "
        "cross-encoder's), the layout data.format: distillation reads (loss splade_distillation, or ColBERT's). "
        "Needs --cross-encoder.", False)
    batch_size: int = _help("Encoding (and cross-encoder) batch size.", 32, low=1)
    use_faiss: bool = _help("Dense models: search with FAISS instead of a full similarity matrix.", True,
                            flag="--no-faiss", flag_help="Dense models: an exact similarity matrix instead of FAISS "
                            "search.")
    seed: int = _help("Seed of random sampling.", 42)

    def check(self) -> None:
        if self.num_negatives < 1:
            raise EmbedkitError(f"num_negatives must be at least 1, got {self.num_negatives}")
        if self.range_min < 0 or self.range_max <= self.range_min:
            raise EmbedkitError(f"need 0 <= range_min < range_max, got {self.range_min} and {self.range_max}")
        if self.range_max - self.range_min < self.num_negatives:
            raise EmbedkitError(f"the rank range [{self.range_min}, {self.range_max}) holds fewer than "
                                f"{self.num_negatives} candidates")
        if self.sampling not in ("top", "random"):
            raise EmbedkitError(f"sampling must be 'top' or 'random', got {self.sampling!r}")
        if self.batch_size < 1:
            raise EmbedkitError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.teacher_scores and not self.cross_encoder:
            raise EmbedkitError("teacher_scores: the scores come from a cross-encoder; give --cross-encoder MODEL")


@dataclass
class Recipe:
    kind: Kind = _help("dense (one vector per text, FAISS), colbert (one vector per token, PLAID) or sparse "
                       "(one weight per vocabulary term, SPLADE: an inverted index).", "dense")
    output_dir: str = _help("Where the trained model folder is written; the run folder, <output_dir>-run, lies "
                            "beside it.", "runs/model")
    model: ModelConfig = _help("Backbone and encoding.", factory=ModelConfig)
    colbert: ColbertConfig = _help("Multi-vector settings (kind: colbert).", factory=ColbertConfig)
    sparse: SparseConfig = _help("Learned sparse settings (kind: sparse).", factory=SparseConfig)
    data: DataConfig = _help("Training data.", factory=DataConfig)
    loss: LossConfig = _help("Training objective.", factory=LossConfig)
    training: TrainingConfig = _help("Optimisation.", factory=TrainingConfig)
    index: IndexConfig = _help("Index stage: the corpus and the backend.", factory=IndexConfig)
    eval: EvalConfig = _help("Evaluation after (and during) training.", factory=EvalConfig)
    report: ReportConfig = _help("Report stage: markdown and chart of the results.", factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def narrow(cls: type, obj: Any) -> Any:
    """The ``cls`` part of a section that extends it (``IndexSettings`` of an ``IndexConfig``)."""
    return cls(**{f.name: getattr(obj, f.name) for f in dataclasses.fields(cls)})


# --------------------------------------------------------------------------- validation

def _type_name(tp: Any, quote: bool = True) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) if quote else str(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a, quote) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0], quote)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _shown(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it, cut short (a 4,000-digit number is not echoed whole).

    >>> _shown("x" * 100)[-20:]
    '... (102 characters)'
    """
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**18 else "a number of over 18 digits"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except EmbedkitError as exc:
                errors.append(exc)
        raise EmbedkitError(f"{where}: expected {_type_name(tp)}, got {_shown(value)}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise EmbedkitError(f"{where}: {_shown(value)} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise EmbedkitError(f"{where}: expected {_type_name(tp)}, got {_shown(value)}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise EmbedkitError(f"{where}: expected a mapping of keys, got {_shown(value)}")
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise EmbedkitError(f"{where}: expected true or false, got {_shown(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise EmbedkitError(f"{where}: expected an integer, got {_shown(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "8e-5" as a string
            except ValueError:
                pass
        raise EmbedkitError(f"{where}: expected a number, got {_shown(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise EmbedkitError(f"{where}: expected a string, got {_shown(value)}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


# Recipe keys that have moved, and where to: an old recipe gets one error that says what to write instead.
MOVED_KEYS = {"model.unpadded": "training.unpadded, index.unpadded and eval.unpadded (one per stage, as the "
                                "precision of training and encoding is)",
              # the model's runtime is chosen per stage, beside its precision (index.backend is the index's)
              "model.backend": "index.model_backend and eval.model_backend (torch, onnx or openvino: the runtime "
                               "each stage encodes with, beside its precision)"}


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        if f"{prefix}{unknown[0]}" in MOVED_KEYS:
            raise EmbedkitError(f"{prefix}{unknown[0]} has moved: set {MOVED_KEYS[f'{prefix}{unknown[0]}']}")
        raise EmbedkitError(
            f"unknown key {prefix}{unknown[0]!s}; valid keys{' in ' + where if where else ''}: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except EmbedkitError as exc:  # a field's bound (Bounded): name it by its full key
        field_name = str(exc).split(":", 1)[0]
        if where and field_name in names:
            raise EmbedkitError(f"{where}.{exc}") from None
        raise


def _set_override(raw: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise EmbedkitError(f"--set expects key=value, got {assignment!r}")
    dotted, text = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except (yaml.YAMLError, ValueError):  # ValueError: an integer of more digits than Python converts
        value = text
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise EmbedkitError(f"--set {dotted}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def check_fields(recipe: Recipe) -> Recipe:
    """Cross-field checks that a single field's type cannot express. What needs a registry (the loss fits the
    kind and the data, the ColBERT library is usable here) is checked by :func:`embedkit.train.recipes.check_recipe`,
    at the layer that holds the registries; ``embedkit.train.recipes.load_recipe`` runs both."""
    for name, value in [("training.batch_size", recipe.training.batch_size),
                        ("loss.mini_batch_size", recipe.loss.mini_batch_size),
                        ("training.gradient_accumulation_steps", recipe.training.gradient_accumulation_steps)]:
        if value < 1:
            raise EmbedkitError(f"{name}: must be at least 1, got {value}")
    if recipe.model.max_seq_length is not None and recipe.model.max_seq_length < 1:
        raise EmbedkitError(f"model.max_seq_length: must be at least 1 (or null: the model's own limit), "
                            f"got {recipe.model.max_seq_length}")
    if recipe.training.max_steps == 0:
        raise EmbedkitError("training.max_steps: must be -1 (every epoch) or at least 1, got 0")
    if recipe.training.learning_rate <= 0:
        raise EmbedkitError(f"training.learning_rate: must be positive, got {recipe.training.learning_rate}")
    if not 0 <= recipe.training.warmup_ratio < 1:
        raise EmbedkitError(f"training.warmup_ratio: must be in [0, 1), got {recipe.training.warmup_ratio}")
    for name, value in [("colbert.embedding_dim", recipe.colbert.embedding_dim),
                        ("colbert.query_length", recipe.colbert.query_length),
                        ("colbert.document_length", recipe.colbert.document_length)]:
        if value is not None and value < 1:
            raise EmbedkitError(f"{name}: must be at least 1 (or null: the checkpoint's own), got {value}")
    for name in ("document_regularizer_weight", "query_regularizer_weight"):
        value = getattr(recipe.sparse, name)
        if not 0 <= value <= REGULARIZER_MAX:
            raise EmbedkitError(f"sparse.{name}: must be in [0, {REGULARIZER_MAX}] (FLOPS regulariser weight; "
                                f"typical 1e-5 to 1e-2), got {value}")
    return recipe


def parse_recipe(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), source: str = "recipe") -> Recipe:
    """A recipe mapping with ``key=value`` overrides applied, typed and its fields checked; errors start with
    ``source``. Not checked against the registries: load recipes with ``embedkit.train.recipes``."""
    raw = dict(raw or {})
    if isinstance(overrides, str):  # one "key=value" passed on its own, not iterated character by character
        overrides = [overrides]
    for assignment in overrides:
        _set_override(raw, assignment)
    try:
        return check_fields(_build(Recipe, raw, ""))
    except EmbedkitError as exc:
        raise EmbedkitError(f"{source}: {exc}") from None


def read_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """A YAML recipe read, overridden and parsed as :func:`parse_recipe` does; errors name the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise EmbedkitError(f"recipe not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # an integer of more digits than Python converts (not a YAMLError)
        raise EmbedkitError(f"{path}: {str(exc)[:100]}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise EmbedkitError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is not None and not isinstance(raw, dict):
        raise EmbedkitError(f"{path}: a recipe is a mapping of sections, got {type(raw).__name__}")
    return parse_recipe(raw or {}, overrides, source=str(path))


def yaml_value(value: Any) -> str:
    """A value as a recipe writes it: ``auto``, ``null``, ``true``, ``[]``, ``[bm25, base]``, ``8.0e-05``.

    >>> [yaml_value(v) for v in ("auto", None, True, [], ["a", "b"], 8e-05, "")]
    ['auto', 'null', 'true', '[]', '[a, b]', '8.0e-05', "''"]
    """
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def default_of(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def recipe_keys(cls: type = Recipe, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every recipe key, types and defaults as a recipe writes them: the source
    of the recipe reference (docs/reference/recipe.md)."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(recipe_keys(tp, key + "."))
            continue
        rows.append((key, _type_name(tp, quote=False), yaml_value(default_of(f)), f.metadata.get("help", "")))
    return rows


def reference_markdown() -> str:
    """The recipe reference table, generated from the dataclasses (the docs' recipe reference page holds it)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, tp, default, text in recipe_keys():
        lines.append(f"| `{key}` | {tp.replace(' | ', ' / ')} | `{default}` | {text.replace('|', '/')} |")
    return "\n".join(lines)


def reference_page() -> str:
    """docs/reference/recipe.md, whole: written by ``make reference``; tests/test_docs.py keeps it equal to this."""
    return "\n".join([
        "# Recipe reference", "",
        "<!-- Generated from the dataclasses in embedkit/config.py: do not edit; run `make reference`. -->", "",
        "A recipe has the sections `model`, `colbert`, `data`, `loss`, `training` (training), `index` (the corpus "
        "to index and the backend), `eval` (datasets, split, protocol, long-document mode, k) and `report` (where, "
        "and which baselines to score beside the model). Every key is a typed field with the help below; the CLI "
        "flags of `embedkit index`, `eval`, `search` and `serve` are the same fields. Override any key with "
        "`--set key=value`; an unknown key fails with the list of valid ones.", "",
        reference_markdown(), ""])


# --------------------------------------------------------------------------- where a run writes

def run_folder(recipe: Recipe) -> Path:
    """The folder beside the model folder that holds a run's relative outputs: ``runs/minilm`` (the model) and
    ``runs/minilm-run/{index,eval,report}``.

    >>> run_folder(Recipe(output_dir="runs/minilm")).as_posix()
    'runs/minilm-run'
    """
    model = Path(recipe.output_dir)
    return model.with_name(model.name + "-run")


def with_run_paths(recipe: Recipe) -> Recipe:
    """The recipe with relative ``index.output_dir``, ``eval.output_dir`` and ``report.output_dir`` placed in
    the run folder; absolute ones are kept as they are.

    >>> r = with_run_paths(Recipe(output_dir="runs/m"))
    >>> [Path(p).as_posix() for p in (r.index.output_dir, r.eval.output_dir, r.report.output_dir)]
    ['runs/m-run/index', 'runs/m-run/eval', 'runs/m-run/report']
    """
    folder = run_folder(recipe)

    def place(path: str) -> str:
        return path if Path(path).expanduser().is_absolute() else str(folder / path)

    return dataclasses.replace(
        recipe, index=dataclasses.replace(recipe.index, output_dir=place(recipe.index.output_dir)),
        eval=dataclasses.replace(recipe.eval, output_dir=place(recipe.eval.output_dir)),
        report=dataclasses.replace(recipe.report, output_dir=place(recipe.report.output_dir)))


# --------------------------------------------------------------------------- what training depends on

# Recipe sections training does not read (evaluation after training is the eval stage's job); of eval:,
# only eval.during_training and, when it is set, the split and batch size it is scored with.
_NOT_TRAINING = ("output_dir", "index", "report")
_TRAINING_EVAL_KEYS = ("during_training", "split", "batch_size")


def training_settings(recipe: Recipe | dict[str, Any]) -> dict[str, Any]:
    """The part of a recipe (or of a saved recipe's dict) that decides the trained model: two recipes with
    equal training settings train the same model, whatever their index, eval and report sections say."""
    raw = recipe.to_dict() if isinstance(recipe, Recipe) else _moved_unpadded(dict(recipe))
    kept = {key: value for key, value in raw.items() if key not in _NOT_TRAINING and key != "eval"}
    evaluation = raw.get("eval") or {}
    during = evaluation.get("during_training")  # split and batch size count only when something is scored
    kept["eval"] = {key: evaluation.get(key) for key in _TRAINING_EVAL_KEYS} if during else {"during_training": None}
    return kept


def _moved_unpadded(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved recipe's dict with the ``model.unpadded`` of a model trained before that key moved read as the
    ``training.unpadded`` it now is (so an unchanged recipe still finds its model trained)."""
    model, training = raw.get("model"), raw.get("training")
    if not isinstance(model, dict) or "unpadded" not in model or not isinstance(training, dict):
        return raw
    model = dict(model)
    return {**raw, "model": model, "training": {**training, "unpadded": model.pop("unpadded")}}


def setting_differences(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two recipe dicts.

    >>> setting_differences({"training": {"learning_rate": 1e-4}}, {"training": {"learning_rate": 5e-5}})
    ['training.learning_rate: 0.0001 -> 5.0e-05']
    """
    changes = []
    for key in sorted(set(before) | set(after), key=lambda k: (k not in before, str(k))):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += setting_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key}: {yaml_value(old)} -> {yaml_value(new)}")
    return changes
