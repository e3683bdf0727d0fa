"""Export a sentence-transformers ``MultiVectorEncoder`` folder to PyLate's format, file by file.

PyLate 1.6 cannot read a sentence-transformers 6 save (its modules.json names classes that
sentence-transformers 5.3 lacks), while ``MultiVectorEncoder`` reads PyLate folders. The conversion rewrites
the three config files and the projection folders and copies the weights and tokenizer as they are, so it
runs in either environment (no model is loaded). A model whose behaviour PyLate cannot reproduce (a marker
that is not one token, queries expanded to a minimum rather than a fixed length, MeanMaxSim, a token pooling
module, ...) is refused with the reason instead of being exported into something that scores differently.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedkit.errors import EmbedkitError

CONFIGS = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")
TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
DENSE = "sentence_transformers.base.modules.dense.Dense"
MASK = "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask"
NORMALIZE = "sentence_transformers.base.modules.normalize.Normalize"
PYLATE_TRANSFORMER = "sentence_transformers.models.Transformer"
PYLATE_DENSE = "pylate.models.Dense.Dense"


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbedkitError(f"{path.parent}: no {path.name}: not a sentence-transformers MultiVectorEncoder "
                            "folder") from None
    except ValueError as exc:
        raise EmbedkitError(f"{path}: not valid JSON ({exc})") from None


def _token_ids(folder: Path) -> set[str]:
    """Every token the tokenizer has (its vocabulary and added tokens), from tokenizer.json."""
    tokenizer = _json(folder / "tokenizer.json")
    vocab = (tokenizer.get("model") or {}).get("vocab") or {}
    tokens = set(vocab) if isinstance(vocab, dict) else {v[0] for v in vocab if isinstance(v, list) and v}
    return tokens | {t.get("content") for t in tokenizer.get("added_tokens") or [] if isinstance(t, dict)}


def _modules(folder: Path) -> tuple[list[Path], dict[str, Any]]:
    """The Dense folders and the MultiVectorMask config of a Transformer → Dense... → mask → Normalize model."""
    modules = _json(folder / "modules.json")
    types = [m.get("type") for m in modules] if isinstance(modules, list) else []
    if len(types) < 4 or types[0] != TRANSFORMER or types[-2:] != [MASK, NORMALIZE] or \
            any(t != DENSE for t in types[1:-2]) or modules[0].get("path"):
        raise EmbedkitError(f"{folder}: PyLate holds Transformer (in the folder itself), Dense projections, "
                            f"scoring mask and normalisation only; this model has {', '.join(map(str, types))}")
    denses = [folder / m["path"] for m in modules[1:-2]]
    return denses, _json(folder / modules[-2]["path"] / "config.json")


def _dense_config(path: Path) -> dict[str, Any]:
    config = _json(path / "config.json")
    if config.get("module_input_name", "token_embeddings") != "token_embeddings":
        raise EmbedkitError(f"{path}: a projection of {config.get('module_input_name')}, not of token embeddings")
    return {"in_features": config["in_features"], "out_features": config["out_features"], "bias": config["bias"],
            "activation_function": config["activation_function"],
            "use_residual": config.get("use_residual", False)}


def _query_settings(transformer: dict[str, Any], max_length: int | None) -> dict[str, Any]:
    expansion = transformer.get("query_expansion")
    if expansion is None:
        length = transformer.get("query_length") or max_length
        return {"query_length": length, "do_query_expansion": False, "attend_to_expansion_tokens": False}
    if expansion.get("strategy") != "fixed" or expansion.get("token") not in (None, "[MASK]"):
        raise EmbedkitError(f"query expansion {expansion}: PyLate pads queries to a fixed length with the mask "
                            "token only")
    return {"query_length": expansion["length"], "do_query_expansion": True,
            "attend_to_expansion_tokens": bool(expansion.get("attend"))}


def pylate_config(folder: Path) -> dict[str, Any]:
    """PyLate's config_sentence_transformers.json for the MultiVectorEncoder in ``folder`` (refused with the
    reason when PyLate would score differently)."""
    st = _json(folder / "config_sentence_transformers.json")
    if st.get("model_type") != "MultiVectorEncoder":
        raise EmbedkitError(f"{folder}: model_type {st.get('model_type')!r}, not a sentence-transformers "
                            "MultiVectorEncoder (a PyLate folder needs no export)")
    if st.get("similarity_fn_name") not in (None, "maxsim"):
        raise EmbedkitError(f"{folder}: similarity {st['similarity_fn_name']!r}; PyLate scores by MaxSim only")
    transformer = _json(folder / "sentence_bert_config.json")
    if transformer.get("transformer_task", "feature-extraction") != "feature-extraction" or \
            set((transformer.get("modality_config") or {"text": None})) != {"text"}:
        raise EmbedkitError(f"{folder}: a text feature-extraction backbone is all PyLate loads")
    tokenizer_config = _json(folder / "tokenizer_config.json")
    max_length = tokenizer_config.get("model_max_length")
    _, mask = _modules(folder)
    if mask.get("skiplist_tasks", ["document"]) != ["document"] or mask.get("keep_only_token_ids") is not None:
        raise EmbedkitError(f"{folder}: PyLate drops skiplist tokens from documents only, with no allow-list")
    prompts = st.get("prompts") or {}
    tokens = _token_ids(folder)
    markers = {}
    for role in ("query", "document"):
        marker = prompts.get(role) or ""
        if marker and marker not in tokens:
            raise EmbedkitError(f"{folder}: the {role} prompt {marker!r} is not one token of the tokenizer; PyLate "
                                "inserts its markers as single tokens")
        markers[f"{role}_prefix"] = marker
    return {"model_type": "ColBERT", "__version__": st.get("__version__", {}),
            "prompts": {"query": "", "document": ""}, "default_prompt_name": None, "similarity_fn_name": "MaxSim",
            **markers, **_query_settings(transformer, max_length),
            "document_length": transformer.get("document_length") or max_length,
            "skiplist_words": list(mask.get("skiplist_words") or [])}


def export_pylate(model: str | Path, out: Path) -> None:
    """Write PyLate's layout of ``model`` (a MultiVectorEncoder folder) into the empty folder ``out``."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise EmbedkitError(f"{model}: not a model folder (export reads a local MultiVectorEncoder folder)")
    config = pylate_config(folder)
    denses, _ = _modules(folder)
    for item in folder.iterdir():  # weights, tokenizer, HF config, model card; module folders are rewritten below
        if item.is_file() and item.name not in CONFIGS:
            shutil.copy2(item, out / item.name)
    modules = [{"idx": 0, "name": "0", "path": "", "type": PYLATE_TRANSFORMER}]
    for i, dense in enumerate(denses, start=1):
        target = out / f"{i}_Dense"
        target.mkdir()
        (target / "config.json").write_text(json.dumps(_dense_config(dense), indent=4), encoding="utf-8")
        weights = [f for f in dense.iterdir() if f.name != "config.json" and f.is_file()]
        if not weights:
            raise EmbedkitError(f"{dense}: no weights")
        for f in weights:
            shutil.copy2(f, target / f.name)
        modules.append({"idx": i, "name": str(i), "path": target.name, "type": PYLATE_DENSE})
    (out / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (out / "config_sentence_transformers.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": config["document_length"], "do_lower_case": False}, indent=4),
        encoding="utf-8")


EXPORTS: dict[str, Callable[[str | Path, Path], None]] = {"pylate": export_pylate}
# What marks a folder as an export embedkit wrote (the only kind of folder export --overwrite replaces).
EXPORT_MANIFEST = "embedkit-export.json"


def export_model(model: str | Path, out: str | Path, format: str, overwrite: bool = False) -> Path:
    """Export ``model`` to ``format`` at ``out``, written in a temporary sibling and renamed when complete."""
    from embedkit.artifacts import check_apart, check_replaceable, partial_path, publish_dir, versions, write_json

    if format not in EXPORTS:
        raise EmbedkitError(f"unknown export format {format!r}; use one of {', '.join(EXPORTS)}")
    out = Path(out)
    check_apart(out, "output", [("model", model)])
    if out.exists() or out.is_symlink():
        check_replaceable(out, EXPORT_MANIFEST, "an exported model")
        if not overwrite:
            raise EmbedkitError(f"{out} already exists; pass --overwrite to replace it")
    shutil.rmtree(partial_path(out), ignore_errors=True)  # a killed export's leftovers
    with publish_dir(out, overwrite=overwrite, keep_partial=False, manifest=EXPORT_MANIFEST,
                     what="an exported model") as work:
        EXPORTS[format](model, work)
        write_json(work / EXPORT_MANIFEST, {"format": format, "model": str(model), "versions": versions()})
    return out
