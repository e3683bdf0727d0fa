"""The recipe: one typed section per stage (every key a field with help; defaults live only in the sections)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import yaml

from embedkit.config.evaluation import EvalConfig, ReportConfig
from embedkit.config.fields import Kind, _help
from embedkit.config.index import IndexConfig
from embedkit.config.training import ColbertConfig, DataConfig, LossConfig, ModelConfig, SparseConfig, TrainingConfig


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
