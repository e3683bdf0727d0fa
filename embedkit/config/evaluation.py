"""How a model is scored: fusion and reranking (:class:`RetrieveConfig`), one dataset's evaluation options,
the recipe's ``eval:`` and ``report:`` sections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from embedkit.config.fields import Bounded, Kind, _help
from embedkit.config.index import EncodeSettings


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
