"""How texts are encoded (:class:`EncodeSettings`) and how an index is built: the backend and its options
(FAISS, PLAID, Qdrant, Seismic), and the recipe's ``index:`` section (the corpus and the index folder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from embedkit.config.fields import PACKED_HELP, Bounded, ColbertLibrary, PackedMode, _help

Quantization = Literal["none", "int8", "binary"]  # names of embedkit.index.registry.QUANTIZATIONS
QUANTIZATION_GROUP = "quantization (dense models: backends flat, hnsw)"
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
        "bf16 inference), for CPUs with AVX512-BF16 or AMX (refused elsewhere) and GPUs; int8: 8-bit weights "
        "(model_backend onnx: ONNX Runtime's dynamic quantization; openvino: NNCF's weight compression). Checked "
        "against fp32 on the first texts. An index records it and encodes its queries the same way.", "fp32")
    model_backend: Literal["torch", "onnx", "openvino"] = _help(
        "The runtime of the model's transformer: torch, or an ONNX export run by ONNX Runtime (onnx) or OpenVINO "
        "(openvino), exported once into embedkit's cache and checked against torch fp32 on the first texts "
        "(an error if it differs). Dense, colbert and the cross-encoder reranker.", "torch")
    packed: PackedMode = _help(PACKED_HELP.format(what="when encoding") + " The vectors agree either way (to "
                               "float tolerance), so no index or result records it.", "auto", renamed_from="unpadded")
    colbert_library: ColbertLibrary = _help(
        "The ColBERT library that loads colbert models (and a colbert reranker's): the value of colbert.library "
        "(--colbert-library), carried to the encoders. The library that loaded a model is in its index's "
        "manifest; the settings keys do not record it.", "auto", carried="colbert.library")


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
