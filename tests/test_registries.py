"""Each choice's names live in its registry: the recipe's ``Literal`` types and the command line's ``choices``
spell the same names (one test per registry), the implementations call themselves by their registry name, and
no module outside a registry compares a value with one of its names."""

from __future__ import annotations

import argparse
import ast
import typing
from pathlib import Path

import pytest

import embedkit
from embedkit import config


def _field_type(cls: type, name: str) -> typing.Any:
    return typing.get_type_hints(cls)[name]


def _names(literal: typing.Any) -> set[str]:
    """The names a ``Literal`` (or an optional one, ``Literal[...] | None``) allows."""
    args = [a for a in typing.get_args(literal) if a is not type(None)]
    if len(args) == 1 and typing.get_origin(args[0]) is typing.Literal:
        args = list(typing.get_args(args[0]))
    return set(args)


# --------------------------------------------------------------------------- recipe types = registries

def test_kinds():
    from embedkit.index.registry import KINDS
    from embedkit.train.losses import DEFAULT_LOSS, LOSSES
    from embedkit.train.run import KINDS as TRAINING_KINDS

    recipe_kinds = _names(config.Kind)
    assert _names(_field_type(config.Recipe, "kind")) == recipe_kinds
    assert _names(_field_type(config.EvalOptions, "kind")) == recipe_kinds
    assert set(TRAINING_KINDS) == recipe_kinds
    assert {name for name, entry in KINDS.items() if entry.needs_model} == recipe_kinds  # bm25's kind has no recipe
    assert set(DEFAULT_LOSS) == recipe_kinds and {spec.kind for spec in LOSSES.values()} == recipe_kinds


def test_index_backends():
    from embedkit.index.faiss_index import FaissType
    from embedkit.index.registry import AUTO, BACKENDS, KINDS, LEXICAL, NO_MODEL, get_backend

    assert _names(config.IndexBackend) == {AUTO, *BACKENDS}
    assert _names(_field_type(config.IndexSettings, "backend")) == {AUTO, *BACKENDS}
    for name, entry in BACKENDS.items():
        backend = get_backend(name)
        assert (backend.name, backend.kind) == (name, entry.kind)
        assert entry.kind in KINDS
    faiss = {name for name, entry in BACKENDS.items() if entry.implementation.startswith("embedkit.index.faiss_index:")}
    assert _names(FaissType) == faiss
    assert LEXICAL in KINDS and not KINDS[LEXICAL].needs_model
    assert BACKENDS[NO_MODEL].kind == LEXICAL  # `--model bm25` names the backend that needs no model
    assert {entry.kind for entry in BACKENDS.values()} == set(KINDS)  # every kind fills some backend


def test_encoder_kinds_resolve_to_their_loaders():
    from embedkit.index import encoders
    from embedkit.index.registry import KINDS, encoder_loader

    for kind in KINDS:
        loader = encoder_loader(kind)
        assert getattr(encoders, loader.__name__) is loader


def test_fusion_methods():
    from embedkit.retrieve.fusion import FUSIONS

    assert _names(_field_type(config.RetrieveConfig, "fusion")) == set(FUSIONS)


def test_rerankers():
    from embedkit.retrieve.rerank import NO_RERANK, RERANKERS

    assert _names(_field_type(config.RetrieveConfig, "rerank")) == {NO_RERANK, *RERANKERS}
    for name, load in RERANKERS.items():  # a reranker reports the name it was chosen by (method labels)
        assert typing.get_type_hints(load)["return"].name == name


def test_colbert_libraries():
    from embedkit.models.colbert.registry import AUTO, LIBRARIES, _load

    assert _names(_field_type(config.ColbertConfig, "library")) == {AUTO, *LIBRARIES}
    for name in LIBRARIES:
        assert _load(name).name == name


def test_losses_and_data_formats():
    from embedkit.train.losses import DISTILLATION, LOSSES, PAIRS

    formats = _names(_field_type(config.DataConfig, "format"))
    assert formats == {spec.data_format for spec in LOSSES.values()} == {PAIRS, DISTILLATION}


def test_report_metrics_and_protocols():
    from embedkit.evaluate.metrics import PROTOCOLS, Protocol
    from embedkit.evaluate.report import METRICS

    assert _names(config.ReportMetric) == set(METRICS)
    assert _names(_field_type(config.EvalOptions, "protocol")) == set(PROTOCOLS) == _names(Protocol)


def test_model_options():
    from embedkit.models.packed import Pooling, enable_packed
    from embedkit.models.precision import Precision

    assert _names(_field_type(config.ModelConfig, "pooling")) == _names(Pooling)
    assert _names(_field_type(config.EncodeSettings, "precision")) == _names(Precision)
    # every stage's packed key is the one Literal enable_packed checks its mode against
    assert _field_type(config.TrainingConfig, "packed") == _field_type(config.EncodeSettings, "packed")
    assert _field_type(config.EncodeSettings, "packed") == config.PackedMode
    assert "packed" not in typing.get_type_hints(config.ModelConfig)
    with pytest.raises(ValueError, match="auto, on, off"):
        enable_packed(None, "sometimes")


def test_benchmark_loaders():
    from embedkit.data.benchmark_sources import _FETCHERS
    from embedkit.data.benchmarks import BENCHMARKS, LoaderName

    assert _names(LoaderName) == set(_FETCHERS) == {b.loader for b in BENCHMARKS.values()}


# --------------------------------------------------------------------------- command-line choices = registries

def _expected_choices() -> dict[str, set[str]]:
    from embedkit.index.registry import AUTO, BACKENDS, QUANTIZATIONS
    from embedkit.models.backends import BACKENDS as MODEL_BACKENDS
    from embedkit.models.colbert.export import EXPORTS
    from embedkit.models.colbert.registry import AUTO as AUTO_LIBRARY
    from embedkit.models.colbert.registry import LIBRARIES
    from embedkit.retrieve.fusion import FUSIONS
    from embedkit.retrieve.rerank import NO_RERANK, RERANKERS
    from embedkit.train.sweep import run_sweep

    return {
        "--kind": _names(config.Kind),
        "--backend": {AUTO, *BACKENDS},
        "--fusion": set(FUSIONS),
        "--rerank": {NO_RERANK, *RERANKERS},
        "--colbert-library": {AUTO_LIBRARY, *LIBRARIES},
        "--format": set(EXPORTS),
        "--metric": _names(config.ReportMetric),
        "--mldr-setting": _names(config.MldrSetting),
        "--protocol": _names(_field_type(config.EvalOptions, "protocol")),
        "--long-documents": _names(_field_type(config.EvalOptions, "long_documents")),
        "--precision": _names(_field_type(config.EncodeSettings, "precision")),
        "--quantization": set(QUANTIZATIONS),
        "--qdrant-quantization": set(QUANTIZATIONS),
        "--packed": _names(config.PackedMode),
        "--unpadded": _names(config.PackedMode),  # the old name of --packed, hidden
        "--model-backend": set(MODEL_BACKENDS),
        "--keep": _names(typing.get_type_hints(run_sweep)["keep"]),
        "--sampling": _names(_field_type(config.MiningOptions, "sampling")),
    }




def test_every_choices_list_on_the_command_line_is_a_registry_or_a_recipe_type():
    from embedkit.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    expected = _expected_choices()
    seen = set()
    for command, parser in sub.choices.items():
        for action in parser._actions:
            if not action.choices or isinstance(action, argparse._SubParsersAction):
                continue
            flag = action.option_strings[0]
            assert flag in expected, f"embedkit {command} {flag}: choices from where? (add it here)"
            assert set(action.choices) == expected[flag], f"embedkit {command} {flag}"
            seen.add(flag)
    assert seen == set(expected)


# --------------------------------------------------------------------------- no branching on names elsewhere

# Where each choice is made: these modules may compare a value with the names they register.
REGISTRY_MODULES = {
    "index/registry.py",      # backends and encoder kinds
    "index/faiss_index.py",   # the FAISS index types behind flat, hnsw and ivfpq
    "retrieve/fusion.py", "retrieve/rerank.py",
    "models/colbert/registry.py",
    "train/losses.py", "train/run.py",
    "models/packed/kernels.py",  # the packed forward's attention kernels
}


def _registered_names() -> set[str]:
    from embedkit.index.registry import BACKENDS, KINDS, NO_MODEL
    from embedkit.models.colbert.registry import LIBRARIES
    from embedkit.models.packed import KERNELS
    from embedkit.retrieve.fusion import FUSIONS
    from embedkit.retrieve.rerank import NO_RERANK, RERANKERS
    from embedkit.train.losses import LOSSES, PAIRS

    return {*BACKENDS, *KINDS, NO_MODEL, *FUSIONS, NO_RERANK, *RERANKERS, *LIBRARIES, *LOSSES, PAIRS, *KERNELS}


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [text for element in node.elts for text in _strings(element)]
    return []


def name_comparisons(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, code) of each comparison (``==``, ``!=``, ``in``, ``not in``) of a value with one of ``names``
    written as a string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(
                text in names for part in (node.left, *node.comparators) for text in _strings(part)):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_name_comparisons_are_found():
    names = {"bm25", "dense", "rrf"}
    source = ('if model != "bm25":\n    pass\nok = kind in ("lexical", "dense")\nx = method == "rrf"\n'
              'y = f"{model} bm25" == text\nz = {"bm25": 1}[model]\n')
    assert [line for line, _ in name_comparisons(source, names)] == [1, 3, 4]


def test_no_module_outside_a_registry_compares_with_a_registered_name():
    package = Path(embedkit.__file__).resolve().parent
    names = _registered_names()
    found = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        if where in REGISTRY_MODULES:
            continue
        found += [f"embedkit/{where}:{line}: {code}"
                  for line, code in name_comparisons(path.read_text(encoding="utf-8"), names)]
    assert found == [], "ask the registry instead:\n" + "\n".join(found)


@pytest.mark.parametrize("module", sorted(REGISTRY_MODULES))
def test_registry_modules_exist(module):
    assert (Path(embedkit.__file__).resolve().parent / module).is_file()


def test_model_backends():
    from embedkit.models.backends import BACKENDS

    assert _names(_field_type(config.EncodeSettings, "model_backend")) == set(BACKENDS)
    precisions = {p for entry in BACKENDS.values() for p in entry.precisions}
    assert _names(_field_type(config.EncodeSettings, "precision")) == precisions
