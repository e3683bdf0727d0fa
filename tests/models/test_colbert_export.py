"""``embedkit export --format pylate``: a MultiVectorEncoder folder rewritten in PyLate's layout.

In the default environment: the export reads back in ``MultiVectorEncoder`` (which reads PyLate folders) with
the same token vectors, and models PyLate would score differently are refused. Across environments (``make
test-pylate``): the default environment trains a model, this process (PyLate's environment) exports it, since
the conversion loads no model, and ``pylate.models.ColBERT`` gives the same token vectors as embedkit's
encoder gave over there.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from tests.helpers import import_pylate

pytestmark = pytest.mark.colbert

QUERIES = ["read a file quickly", "sort a list in place"]
DOCUMENTS = ["def read(path):\n    return open(path).read()",
             "def sort(xs):\n    xs.sort()  # in place!\n    return xs"]
HAS_MULTIVECTORENCODER = int(version("sentence-transformers").split(".")[0]) >= 6
needs_st6 = pytest.mark.skipif(not HAS_MULTIVECTORENCODER,
                               reason="stack: builds a MultiVectorEncoder in this process (the default environment)")


@pytest.fixture(scope="module")
def mve_folder(tmp_path_factory, tiny_modernbert) -> Path:
    """A fresh ColBERT of the tiny ModernBERT saved by sentence-transformers' MultiVectorEncoder."""
    from embedkit.config import ColbertConfig, ModelConfig
    from embedkit.models.colbert import build_colbert_model

    folder = tmp_path_factory.mktemp("mve") / "model"
    build_colbert_model(ModelConfig(name=str(tiny_modernbert)),
                        ColbertConfig(library="sentence-transformers", embedding_dim=16, query_length=20,
                                      document_length=48), device="cpu").save(str(folder))
    return folder


def _vectors(model) -> list[np.ndarray]:
    return list(model.encode_query(QUERIES, convert_to_numpy=True)) + \
        list(model.encode_document(DOCUMENTS, convert_to_numpy=True))


@needs_st6
def test_export_reads_back_in_multivectorencoder_with_the_same_vectors(mve_folder, tmp_path, capsys):
    from sentence_transformers import MultiVectorEncoder

    from embedkit.cli import main

    out = tmp_path / "pylate"
    assert main(["export", "--format", "pylate", str(mve_folder), str(out)]) == 0
    assert f"pylate model written to {out}" in capsys.readouterr().out
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"] for m in modules] == ["sentence_transformers.models.Transformer", "pylate.models.Dense.Dense"]
    config = json.loads((out / "config_sentence_transformers.json").read_text())
    assert config["model_type"] == "ColBERT" and config["query_prefix"] == "[Q] " and config["query_length"] == 20
    assert config["document_length"] == 48 and config["do_query_expansion"] is True
    assert "!" in config["skiplist_words"]
    assert not out.with_name(out.name + ".partial").exists()
    original, exported = MultiVectorEncoder(str(mve_folder), device="cpu"), MultiVectorEncoder(str(out), device="cpu")
    for got, want in zip(_vectors(exported), _vectors(original)):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # an existing folder is kept unless asked
    assert main(["export", str(mve_folder), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def _edited(folder: Path, tmp_path: Path, file: str, change) -> Path:
    import shutil

    copy = tmp_path / f"edited-{file.replace('/', '-')}"
    shutil.copytree(folder, copy)
    path = copy / file
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return copy


@needs_st6
@pytest.mark.parametrize("file, change, reason", [
    ("sentence_bert_config.json", lambda c: {**c, "query_expansion": {**c["query_expansion"], "strategy": "min"}},
     "fixed length"),
    ("config_sentence_transformers.json", lambda c: {**c, "similarity_fn_name": "meanmaxsim"}, "MaxSim only"),
    ("config_sentence_transformers.json", lambda c: {**c, "prompts": {"query": "search_query: ", "document": ""}},
     "not one token"),
    ("config_sentence_transformers.json", lambda c: {**c, "model_type": "SentenceTransformer"}, "model_type"),
    ("2_MultiVectorMask/config.json", lambda c: {**c, "skiplist_tasks": ["query", "document"]}, "documents only"),
    ("modules.json", lambda c: c[:1] + c[2:], "Dense projections"),
])
def test_export_refuses_what_pylate_would_score_differently(mve_folder, tmp_path, file, change, reason):
    from embedkit.models.colbert.export import export_model

    edited = _edited(mve_folder, tmp_path, file, change)
    out = tmp_path / "out"
    with pytest.raises(EmbedkitError, match=reason):
        export_model(edited, out, "pylate")
    assert not out.exists() and not out.with_name("out.partial").exists()  # nothing written half


def test_export_errors_name_the_problem(tmp_path, minilm_path):
    from embedkit.models.colbert.export import export_model

    with pytest.raises(EmbedkitError, match="unknown export format 'onnx'"):
        export_model(minilm_path, tmp_path / "a", "onnx")
    with pytest.raises(EmbedkitError, match="not a model folder"):
        export_model(tmp_path / "missing", tmp_path / "b", "pylate")
    with pytest.raises(EmbedkitError, match="not a sentence-transformers MultiVectorEncoder"):
        export_model(minilm_path, tmp_path / "c", "pylate")  # a dense model: model_type SentenceTransformer


# --------------------------------------------------------------------------- across the two environments

TRAIN_AND_ENCODE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from embedkit.config import EncodeSettings
    from embedkit.train.recipes import load_recipe
    from embedkit.index.encoders import load_encoder
    from embedkit.train.run import train
    recipe, out = json.loads(sys.argv[1]), sys.argv[2]
    queries, documents = json.loads(sys.argv[3]), json.loads(sys.argv[4])
    folder = train(load_recipe(recipe))
    encoder = load_encoder("colbert", str(folder), EncodeSettings(packed="off"))
    np.savez(out, *(encoder.encode_queries(queries) + encoder.encode_documents(documents)))
    print(encoder.library.name)
""")


def test_a_model_trained_on_sentence_transformers_loads_in_pylate_after_export(tiny_modernbert, train_jsonl,
                                                                              tmp_path):
    python = os.environ.get("EMBEDKIT_ST_PYTHON")
    if not python:
        pytest.skip("stack: needs both environments (make test-pylate sets EMBEDKIT_ST_PYTHON)")
    assert Path(python).is_file(), f"EMBEDKIT_ST_PYTHON={python} does not exist"
    models = import_pylate("pylate.models")
    from embedkit.cli import main

    recipe = {"kind": "colbert", "output_dir": str(tmp_path / "st-model"),
              "model": {"name": str(tiny_modernbert)},
              "colbert": {"library": "sentence-transformers", "embedding_dim": 16, "query_length": 16,
                          "document_length": 48},
              "data": {"train": str(train_jsonl), "max_samples": 16},
              "training": {"batch_size": 4, "max_steps": 2, "logging_steps": 1, "save_steps": 1000,
                           "warmup_ratio": 0.0, "packed": "off"}}
    done = subprocess.run([python, "-c", TRAIN_AND_ENCODE, json.dumps(recipe), str(tmp_path / "st.npz"),
                           json.dumps(QUERIES), json.dumps(DOCUMENTS)], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "sentence-transformers"
    arrays = np.load(tmp_path / "st.npz")
    want = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]

    out = tmp_path / "exported"
    assert main(["export", "--format", "pylate", str(tmp_path / "st-model"), str(out)]) == 0  # here, with PyLate
    model = models.ColBERT(model_name_or_path=str(out), device="cpu")
    got = list(model.encode(QUERIES, is_query=True)) + list(model.encode(DOCUMENTS, is_query=False))
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)
