"""Recipes: YAML files mapped onto typed dataclasses, validated before any work starts.

Every recipe key is one dataclass field below; defaults live only here. Unknown keys fail with the
list of valid ones, wrong types name the field, and ``--set a.b=value`` overrides go through the same
validation as the file.
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

Kind = Literal["dense", "colbert"]


def _help(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING,
          flag: str | None = None) -> Any:
    """A field with its help text; ``flag`` names its command-line flag where ``--field-name`` would not do."""
    metadata = {"help": text, **({"flag": flag} if flag else {})}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelConfig:
    name: str = _help("Hub id or local path of the backbone or of a sentence-transformers/PyLate model.",
                      "answerdotai/ModernBERT-base")
    max_seq_length: int | None = _help("Longest input in tokens (dense); longer texts are truncated. "
                                       "null = the model's own limit (all-MiniLM-L6-v2: 256).", None)
    pooling: Literal["mean", "cls"] = _help("How token vectors become one vector (dense, raw backbones).",
                                            "mean")
    similarity: Literal["cosine", "dot"] = _help("Score function; cosine normalises embeddings.", "cosine")
    query_prompt: str = _help("Text prepended to every query (e.g. 'search_query: ').", "")
    document_prompt: str = _help("Text prepended to every document.", "")
    trust_remote_code: bool = _help("Run code shipped with a hub model. Off unless you trust it.", False)
    unpadded: Literal["auto", "on", "off"] = _help(
        "Packed (unpadded) ModernBERT forward: auto uses it for ModernBERT (checked against HF on first use).", "auto")


@dataclass
class ColbertConfig:
    embedding_dim: int = _help("Size of the per-token projection.", 128)
    query_length: int = _help("Query length in tokens, padded with [MASK] (query expansion).", 32)
    document_length: int = _help("Document length in tokens (up to the backbone's limit, 8192 for ModernBERT).",
                                 180)
    query_prefix: str = _help("Marker prepended to queries.", "[Q] ")
    document_prefix: str = _help("Marker prepended to documents.", "[D] ")


@dataclass
class ColumnsConfig:
    query: str = _help("Column holding the query / anchor text.", "query")
    positive: str = _help("Column holding the relevant document.", "positive")
    negatives: list[str] | None = _help(
        "Columns holding hard negatives; default: every column whose name starts with 'negative'.", None)


@dataclass
class SourceConfig:
    train: str | None = _help("Training data: hub dataset id, or a local JSONL/Parquet/CSV file or folder.",
                              None)
    subset: str | None = _help("Hub dataset configuration (e.g. 'triplet-hard').", None)
    split: str = _help("Split to read.", "train")
    max_samples: int | None = _help("Use at most this many rows (first rows, after shuffling if on).", None)
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
class LossConfig:
    name: str | None = _help("mnrl, cached_mnrl (dense); contrastive, cached_contrastive, distillation "
                             "(colbert). null = the kind's default: mnrl (dense), contrastive (colbert), "
                             "distillation (data.format: distillation).", None)
    mini_batch_size: int = _help("Forward chunk of the cached (GradCache) losses; bounds memory, not the batch.",
                                 32)
    scale: float = _help("Inverse temperature of the in-batch softmax (dense).", 20.0)
    gather_across_devices: bool = _help("Share in-batch negatives across processes under torchrun.", True)
    matryoshka_dims: list[int] = _help("Also train these truncated sizes (Matryoshka); empty = off.",
                                       factory=list)


@dataclass
class TrainingConfig:
    learning_rate: float = _help("Peak learning rate.", 8e-5)
    batch_size: int = _help("Rows per device per step; in-batch negatives come from the whole batch.", 32)
    gradient_accumulation_steps: int = _help("Steps accumulated before an update (negatives are not shared "
                                             "across them: prefer a cached loss).", 1)
    epochs: float = _help("Passes over the training data.", 1.0)
    max_steps: int = _help("Stop after this many updates; -1 = run all epochs.", -1)
    warmup_ratio: float = _help("Fraction of updates spent warming the learning rate up.", 0.05)
    weight_decay: float = _help("AdamW weight decay.", 0.01)
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = _help("Learning-rate schedule.", "linear")
    bf16: bool = _help("Train in bfloat16 mixed precision (GPU).", False)
    seed: int = _help("Seed for shuffling and initialisation.", 42)
    logging_steps: int = _help("Log the loss every N updates.", 10)
    save_steps: int = _help("Checkpoint every N updates (kept until training finishes).", 500)
    eval_steps: int = _help("Score eval.during_training every N updates; 0 = only at the end.", 0)
    resume: bool = _help("Continue from the last checkpoint of an interrupted run in the same output_dir.",
                         True)
    dataloader_num_workers: int = _help("Worker processes feeding batches.", 0)


IndexBackend = Literal["auto", "flat", "hnsw", "ivfpq", "plaid", "exact", "bm25"]


@dataclass
class FaissConfig:
    hnsw_m: int = _help("hnsw: graph neighbours per node.", 32)
    ef_search: int = _help("hnsw: candidates kept while searching (higher = better recall, slower).", 128)
    nlist: int | None = _help("ivfpq: inverted lists; default 4·sqrt(N), capped by the training sample.", None)
    pq_m: int | None = _help("ivfpq: PQ sub-quantisers (must divide the dimension); default dim/4.", None)
    nprobe: int = _help("ivfpq: lists probed per query.", 32)
    train_sample: int = _help("ivfpq: vectors the quantisers are trained on.", 200_000)


@dataclass
class PlaidConfig:
    nbits: int = _help("Bits per residual dimension.", 4)
    kmeans_niters: int = _help("k-means iterations for the centroids.", 4)
    n_ivf_probe: int = _help("Search: centroids probed per query token.", 8)
    n_full_scores: int = _help("Search: candidates scored in full (decompressed MaxSim).", 4096)
    seed: int = _help("k-means seed.", 42)


@dataclass
class EncodeSettings:
    """How texts are encoded for an index (the index stage, and the indexes evaluation builds)."""

    batch_size: int = _help("Encoding batch size.", 64)
    max_length: int | None = _help("Document length in tokens; default: the model's own.", None)
    truncate_dim: int | None = _help("Dense Matryoshka models: keep the first N dimensions.", None)
    precision: Literal["fp32", "bf16"] = _help(
        "Compute precision of encoding. bf16: bfloat16 autocast, for CPUs with AVX512-BF16 or AMX (refused "
        "elsewhere) and GPUs; checked against fp32 on the first texts. An index records it and encodes its "
        "queries the same way.", "fp32")


@dataclass
class IndexSettings(EncodeSettings):
    """How an index is built: the backend and its options."""

    backend: IndexBackend = _help(
        "flat | hnsw | ivfpq (dense, FAISS); plaid | exact (colbert: PLAID or brute-force MaxSim); bm25 (no "
        "model); auto: flat for dense, exact MaxSim for colbert up to index.auto_exact_max_documents, then "
        "plaid.", "auto")
    auto_exact_max_documents: int = _help(
        "colbert, backend auto: largest corpus searched by exact MaxSim (measured crossover, see README).", 10_000)
    shard_size: int = _help("Documents per resumable shard.", 8192)
    faiss: FaissConfig = _help("FAISS options (flat, hnsw, ivfpq).", factory=FaissConfig)
    plaid: PlaidConfig = _help("PLAID options.", factory=PlaidConfig)


@dataclass
class IndexConfig(IndexSettings):
    corpus: str | None = _help("Corpus to index: BEIR folder, .jsonl/.parquet file or hub dataset id; none = "
                               "skip the index stage.", None)
    subset: str | None = _help("Hub dataset configuration of the corpus.", None)
    split: str | None = _help("Hub dataset split of the corpus.", None)
    output_dir: str = _help("Where the index folder is written.", "runs/index", flag="--index-dir")


@dataclass
class RetrieveConfig:
    """Fusion of several indexes and a second-stage reranker over any index (search, eval and serve)."""

    fuse_with: list[str] = _help("Other indexes over the same corpus to fuse with the searched one: index folders, "
                                 "or 'bm25' (built in memory from the index's own documents).", factory=list)
    fusion: Literal["rrf", "weighted"] = _help(
        "rrf: reciprocal rank fusion; weighted: min-max normalised scores, weighted sum.", "rrf")
    rrf_k: int = _help("RRF constant k in 1/(k + rank) (60 in Cormack et al. 2009).", 60)
    weights: list[float] | None = _help("Weighted fusion: one weight per index, the searched one first; "
                                        "null = equal weights (eval: chosen on a dev split of the queries).", None)
    fusion_depth: int = _help("Candidates taken from each fused index per query (at least k).", 100)
    rerank: Literal["none", "colbert", "cross-encoder"] = _help(
        "Second stage over the first stage's top rerank_top_n: ColBERT MaxSim or a CrossEncoder.", "none")
    rerank_model: str | None = _help("Reranker model: a PyLate folder (colbert) or a CrossEncoder; colbert "
                                     "defaults to rerank_index's model.", None)
    rerank_index: str | None = _help("colbert: an exact-MaxSim colbert index (backend exact) over the same corpus whose "
                                     "stored token vectors are read instead of encoding documents per query.", None)
    rerank_top_n: int = _help("First-stage candidates reranked per query.", 100)
    rerank_batch_size: int = _help("Batch size of the reranker's encoding / scoring.", 32)


@dataclass
class EvalOptions(EncodeSettings):
    """How one model is scored on one dataset (``embedkit eval`` flags and the recipe's ``eval:``)."""

    kind: Kind | None = _help("dense | colbert; default: from the model folder (the recipe's kind in a run).",
                              None)
    split: str = _help("qrels split to score.", "test")
    protocol: Literal["beir", "mteb"] = _help(
        "Self-hits (query id == document id): beir drops them on every set, as BEIR does; mteb only on the "
        "sets whose MTEB task opts in (ArguAna, Quora, FiQA, FEVER, MS MARCO in mteb 2.26).", "beir")
    k: int = _help("Documents retrieved per query.", 100, flag="-k")
    long_documents: Literal["truncate", "chunk-maxpool"] = _help(
        "truncate at the model's length, or split into windows and keep each document's best window.", "truncate")
    use_cache: bool = _help("Keep corpus indexes under the cache folder and reuse them.", True, flag="--no-cache")
    per_query: bool = _help("Include per-query scores in the results JSON.", False)
    retrieve: RetrieveConfig = _help("Fusion and reranking applied to the evaluated index.",
                                     factory=RetrieveConfig)


@dataclass
class EvalConfig(EvalOptions):
    data: list[str] = _help("BEIR-format folders or benchmark names scored after training.", factory=list)
    during_training: str | None = _help("Small BEIR-format folder scored while training (nDCG@10 logged, "
                                        "best checkpoint kept).", None)
    mldr_setting: Literal["ood", "id"] = _help("MLDR results: id if the model was fine-tuned on MLDR train.", "ood")
    output_dir: str = _help("Where one results JSON (and TREC run) per dataset is written.", "runs/eval")
    benchmark_cache: str | None = _help("Folder of downloaded benchmark sets; default: the cache folder.", None)


@dataclass
class ReportConfig:
    output_dir: str = _help("Where report.md and report.png are written.", "runs/report")
    baselines: list[str] = _help("Also score these models on eval.data (e.g. bm25, a base model) for the table.",
                                 factory=list)


@dataclass
class Recipe:
    kind: Kind = _help("dense (one vector per text, FAISS) or colbert (one vector per token, PLAID).", "dense")
    output_dir: str = _help("Where the trained model folder is written.", "runs/model")
    model: ModelConfig = _help("Backbone and encoding.", factory=ModelConfig)
    colbert: ColbertConfig = _help("Multi-vector settings (kind: colbert).", factory=ColbertConfig)
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

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


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
        raise EmbedkitError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise EmbedkitError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise EmbedkitError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise EmbedkitError(f"{where}: expected a mapping of keys, got {value!r}")
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise EmbedkitError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise EmbedkitError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "8e-5" as a string
            except ValueError:
                pass
        raise EmbedkitError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise EmbedkitError(f"{where}: expected a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        raise EmbedkitError(
            f"unknown key {prefix}{unknown[0]!s}; valid keys{' in ' + where if where else ''}: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in raw.items()}
    return cls(**kwargs)


def _set_override(raw: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise EmbedkitError(f"--set expects key=value, got {assignment!r}")
    dotted, text = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise EmbedkitError(f"--set {dotted}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def validate(recipe: Recipe) -> Recipe:
    """Cross-field checks that a single field's type cannot express."""
    from embedkit.train.losses import DEFAULT_LOSS, LOSSES, losses_for  # a leaf: the one list of loss names

    if recipe.loss.name is None:
        recipe.loss.name = "distillation" if recipe.data.format == "distillation" else DEFAULT_LOSS[recipe.kind]
    spec = LOSSES.get(recipe.loss.name)
    if spec is None or spec.kind != recipe.kind:
        raise EmbedkitError(f"loss.name: {recipe.loss.name!r} is not a {recipe.kind} loss; "
                            f"use one of {', '.join(losses_for(recipe.kind))}")
    if spec.data_format != recipe.data.format:
        raise EmbedkitError(f"loss.name: {recipe.loss.name} trains on data.format: {spec.data_format}, "
                            f"not {recipe.data.format}")
    for name, value in [("training.batch_size", recipe.training.batch_size),
                        ("loss.mini_batch_size", recipe.loss.mini_batch_size),
                        ("training.gradient_accumulation_steps", recipe.training.gradient_accumulation_steps)]:
        if value < 1:
            raise EmbedkitError(f"{name}: must be at least 1, got {value}")
    if recipe.model.max_seq_length is not None and recipe.model.max_seq_length < 1:
        raise EmbedkitError(f"model.max_seq_length: must be at least 1 (or null: the model's own limit), "
                            f"got {recipe.model.max_seq_length}")
    if recipe.training.learning_rate <= 0:
        raise EmbedkitError(f"training.learning_rate: must be positive, got {recipe.training.learning_rate}")
    if not 0 <= recipe.training.warmup_ratio < 1:
        raise EmbedkitError(f"training.warmup_ratio: must be in [0, 1), got {recipe.training.warmup_ratio}")
    if recipe.loss.matryoshka_dims and recipe.kind != "dense":
        raise EmbedkitError("loss.matryoshka_dims: Matryoshka training is for kind: dense")
    return recipe


def recipe_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                     source: str = "recipe") -> Recipe:
    raw = dict(raw or {})
    for assignment in overrides:
        _set_override(raw, assignment)
    try:
        recipe = _build(Recipe, raw, "")
    except EmbedkitError as exc:
        raise EmbedkitError(f"{source}: {exc}") from None
    try:
        return validate(recipe)
    except EmbedkitError as exc:
        raise EmbedkitError(f"{source}: {exc}") from None


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a YAML recipe, apply ``key=value`` overrides, and validate everything."""
    path = Path(path)
    if not path.is_file():
        raise EmbedkitError(f"recipe not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise EmbedkitError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is not None and not isinstance(raw, dict):
        raise EmbedkitError(f"{path}: a recipe is a mapping of sections, got {type(raw).__name__}")
    return recipe_from_dict(raw or {}, overrides, source=str(path))


def describe(cls: type = Recipe, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every recipe key: the source of the README's recipe reference."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((key, _type_name(tp), repr(default), f.metadata.get("help", "")))
    return rows


def reference_markdown() -> str:
    """The README's recipe reference table, generated from the dataclasses (a test keeps the README in sync)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, tp, default, text in describe():
        lines.append(f"| `{key}` | {tp.replace(' | ', ' / ')} | `{default}` | {text.replace('|', '/')} |")
    return "\n".join(lines)
