"""Recipes and command options as typed dataclasses, validated before any work starts; one module per job.

- :mod:`~embedkit.config.fields`: how a field is declared (help, flag, group, bounds) and the shared option types;
- the schema: :mod:`~embedkit.config.training` (model, colbert, sparse, data, loss, training sections),
  :mod:`~embedkit.config.index` (encoding and index settings), :mod:`~embedkit.config.evaluation` (retrieve, eval,
  report) and :mod:`~embedkit.config.schema` (the :class:`Recipe` that holds them);
- :mod:`~embedkit.config.options`: the options of ``embedkit serve`` and ``embedkit mine`` (not recipe sections);
- :mod:`~embedkit.config.loading`: YAML, ``--set`` overrides, coercion, moved keys, cross-field checks;
- :mod:`~embedkit.config.reference`: the recipe reference page, generated from the fields;
- :mod:`~embedkit.config.placement`: where a run's stages write (the run folder);
- :mod:`~embedkit.config.recorded`: the settings an artefact records, and how two sets of settings differ.

Every recipe key is one dataclass field; defaults live only there. Unknown keys fail with the list of valid ones,
wrong types name the field, and ``--set a.b=value`` overrides go through the same validation as the file. A field's
``help`` is prose for both the recipe reference and the command-line help; ``flag_help`` replaces it for a flag
whose meaning is the field's opposite (``--no-cache``), and ``group`` names the option group a flag is listed under.

A choice's names (backends, kinds, fusion methods, rerankers, ColBERT libraries, losses) live in its registry;
the ``Literal`` types here spell them for type checks, flags and the recipe reference, and
tests/test_registries.py keeps each equal to its registry. Checks that need a registry (the loss fits the kind,
the ColBERT library is usable here) run in :mod:`embedkit.train.recipes`, whose
:func:`~embedkit.train.recipes.load_recipe` is the one way to load a recipe: config sits below every registry and
imports none.
"""

from embedkit.config.evaluation import EvalConfig, EvalOptions, MldrSetting, ReportConfig, ReportMetric, RetrieveConfig
from embedkit.config.fields import PACKED_HELP, Bounded, Kind, PackedMode, bound_error, default_of, narrow
from embedkit.config.index import (
                                        QUANTIZATION_GROUP,
                                        EncodeSettings,
                                        FaissConfig,
                                        IndexBackend,
                                        IndexConfig,
                                        IndexSettings,
                                        PlaidConfig,
                                        QdrantConfig,
                                        Quantization,
                                        SeismicConfig,
)
from embedkit.config.loading import MOVED_KEYS, _build, _type_name
from embedkit.config.options import API_KEY_ENV, MiningOptions, ServeConfig
from embedkit.config.placement import run_folder, with_run_paths
from embedkit.config.recorded import (
                                        NOT_RECORDED,
                                        RECORDED_WHEN_SET,
                                        recorded_settings,
                                        setting_differences,
                                        training_settings,
)
from embedkit.config.reference import recipe_keys, reference_markdown, reference_page, yaml_value
from embedkit.config.schema import Recipe
from embedkit.config.training import (
                                        COLBERT_FRESH_DEFAULTS,
                                        REGULARIZER_MAX,
                                        ColbertConfig,
                                        ColumnsConfig,
                                        DataConfig,
                                        LossConfig,
                                        ModelConfig,
                                        SourceConfig,
                                        SparseConfig,
                                        TrainingConfig,
)

__all__ = [
    # the recipe and its sections
    "Recipe", "ModelConfig", "ColbertConfig", "COLBERT_FRESH_DEFAULTS", "SparseConfig", "REGULARIZER_MAX",
    "ColumnsConfig", "SourceConfig", "DataConfig", "LossConfig", "TrainingConfig",
    "EncodeSettings", "IndexSettings", "IndexConfig", "FaissConfig", "PlaidConfig", "QdrantConfig", "SeismicConfig",
    "RetrieveConfig", "EvalOptions", "EvalConfig", "ReportConfig",
    # option types and how fields are declared
    "Kind", "PackedMode", "PACKED_HELP", "Quantization", "QUANTIZATION_GROUP", "IndexBackend", "MldrSetting",
    "ReportMetric", "Bounded", "bound_error", "default_of", "narrow",
    # command options that are not recipe sections
    "ServeConfig", "MiningOptions", "API_KEY_ENV",
    # loading (the command-line flags build their sections with _build and name types with _type_name)
    "MOVED_KEYS", "_build", "_type_name",
    # the recipe reference
    "recipe_keys", "reference_markdown", "reference_page", "yaml_value",
    # where a run writes; what artefacts record
    "run_folder", "with_run_paths", "NOT_RECORDED", "RECORDED_WHEN_SET", "recorded_settings", "training_settings",
    "setting_differences",
]
