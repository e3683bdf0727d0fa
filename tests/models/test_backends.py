"""Model backends (torch, onnx, openvino): exported once, checked against torch fp32, loud when they fail."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from embedkit.config import EncodeSettings
from embedkit.errors import EmbedkitError
from embedkit.index.encoders import load_encoder
from embedkit.models import backends, precision
from embedkit.models.backends import BACKENDS, RuntimeModel
from embedkit.models.precision import max_relative_error

pytest.importorskip("onnxruntime")
VARIANTS = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")]


def _runtime(encoder) -> RuntimeModel:
    return encoder.model[0].auto_model


@pytest.mark.parametrize(("backend", "prec"), VARIANTS)
@pytest.mark.slow
def test_minilm_on_every_backend_matches_torch(backend, prec, minilm_path, texts, embedkit_cache):
    """The packaged MiniLM (dense): the exported graph gives torch's embeddings (int8: within its tolerance)."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    expected = load_encoder("dense", minilm_path).encode_documents(texts)
    encoder = load_encoder("dense", minilm_path, EncodeSettings(model_backend=backend, precision=prec))
    got = encoder.encode_documents(texts)
    assert isinstance(_runtime(encoder), RuntimeModel) and _runtime(encoder).backend == backend
    assert encoder._checked == {"document", "query"}
    assert got.shape == expected.shape and got.dtype == np.float32
    assert max_relative_error(got, expected) < backends.TOLERANCE[prec]
    if prec == "fp32":
        assert max_relative_error(got, expected) < 1e-4
    exports = list((embedkit_cache / "model-backends").iterdir())
    assert len(exports) == 1 and (exports[0] / "manifest.json").is_file()
    # exported once: a second encoder reuses the cached graph
    again = load_encoder("dense", minilm_path, EncodeSettings(model_backend=backend, precision=prec))
    again.encode_queries(texts[:2])
    assert list((embedkit_cache / "model-backends").iterdir()) == exports


ALL_VARIANTS = [(b, p) for b, entry in BACKENDS.items() for p in entry.precisions if (b, p) != ("torch", "fp32")]


@pytest.mark.parametrize(("backend", "prec"), ALL_VARIANTS)
@pytest.mark.slow
def test_tiny_modernbert_dense_and_colbert_on_backends(backend, prec, tiny_modernbert, texts):
    """A ModernBERT (no token type ids, sliding-window attention) runs on every backend and precision too, as a
    dense and a ColBERT model."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    if prec == "bf16" and not precision.cpu_bf16_features():
        pytest.skip("hardware: bf16 needs a CPU with native bf16")
    for kind in ("dense", "colbert"):
        expected = load_encoder(kind, str(tiny_modernbert), EncodeSettings(packed="off"))
        encoder = load_encoder(kind, str(tiny_modernbert), EncodeSettings(model_backend=backend, precision=prec,
                                                                          packed="off"))
        for side in ("encode_documents", "encode_queries"):
            got, want = getattr(encoder, side)(texts), getattr(expected, side)(texts)
            assert max_relative_error(got, want) < backends.tolerance(backend, prec), (kind, side)
            if prec == "fp32":
                assert max_relative_error(got, want) < 1e-3, (kind, side)
        assert encoder._checked == {"document", "query"}
        if backend != "torch":
            assert isinstance(_runtime(encoder), RuntimeModel)


def test_cross_encoder_reranker_on_onnx(tiny_modernbert, tmp_path):
    from sentence_transformers import CrossEncoder

    from embedkit.models.cross_encoder import load_cross_encoder

    CrossEncoder(str(tiny_modernbert), num_labels=1, max_length=64).save_pretrained(str(tmp_path / "ce"))
    pairs = [("sort a list", "def sort(xs): return sorted(xs)"), ("open a file", "with open(p) as f: pass")]
    expected = load_cross_encoder(str(tmp_path / "ce")).predict(pairs)
    model = load_cross_encoder(str(tmp_path / "ce"), model_backend="onnx")
    assert isinstance(model[0].auto_model, RuntimeModel)
    np.testing.assert_allclose(model.predict(pairs), expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(("backend", "prec"), [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32")])
@pytest.mark.slow
def test_minilm_cross_encoder_reranks_on_backends(backend, prec, minilm_path, tmp_path):
    """A MiniLM (BERT, token type ids) cross-encoder: its scores on the backend are torch's (int8: within its
    tolerance), and the reranker's order of candidates with them is torch's order."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    from sentence_transformers import CrossEncoder

    from embedkit.models.cross_encoder import load_cross_encoder

    CrossEncoder(minilm_path, num_labels=1, max_length=64).save_pretrained(str(tmp_path / "ce"))
    query = "read a file line by line"
    docs = ["with open(path) as f:\n    for line in f: print(line)", "def add(a, b): return a + b",
            "The Eiffel Tower is in Paris.", "import json\njson.loads(text)", "for line in sys.stdin: pass"]
    pairs = [(query, d) for d in docs]
    expected = load_cross_encoder(str(tmp_path / "ce")).predict(pairs)
    model = load_cross_encoder(str(tmp_path / "ce"), model_backend=backend, precision=prec)
    runtime = model[0].auto_model
    assert isinstance(runtime, RuntimeModel) and (runtime.backend, runtime.precision) == (backend, prec)
    got = model.predict(pairs)
    spread = np.abs(expected).max()
    assert np.abs(got - expected).max() / spread < (1e-3 if prec == "fp32" else backends.TOLERANCE[prec])
    if prec == "fp32":
        assert list(np.argsort(-got)) == list(np.argsort(-expected))


def test_a_backend_that_differs_from_torch_is_one_clear_error(monkeypatch, minilm_path, texts):
    real = backends._load_onnxruntime

    def broken(folder, prec):
        run = real(folder, prec)
        return lambda feeds: run(feeds)[..., ::-1].copy()  # a wrong graph: dimensions reversed

    monkeypatch.setitem(BACKENDS, "onnx", dataclasses.replace(BACKENDS["onnx"], load=broken))
    encoder = load_encoder("dense", minilm_path, EncodeSettings(model_backend="onnx"))
    with pytest.raises(EmbedkitError, match="model backend onnx: the document embeddings differ from torch fp32"):
        encoder.encode_documents(texts)


def test_a_failed_export_is_one_clear_error(monkeypatch, minilm_path, texts):
    def fail(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator foo")

    monkeypatch.setattr(backends.torch.onnx, "export", fail)
    encoder = load_encoder("dense", minilm_path, EncodeSettings(model_backend="onnx"))
    with pytest.raises(EmbedkitError, match="could not export BertModel for model backend onnx .*foo.*model backend "
                                            "torch"):
        encoder.encode_documents(texts)


def test_a_failed_openvino_conversion_is_one_clear_error(monkeypatch, minilm_path, texts):
    ov = pytest.importorskip("openvino")

    def fail(*args, **kwargs):
        raise RuntimeError("Exception from src/frontends/pytorch/src/frontend.cpp:1:\nModel wasn't fully converted")

    monkeypatch.setattr(ov, "convert_model", fail)
    encoder = load_encoder("dense", minilm_path, EncodeSettings(model_backend="openvino"))
    with pytest.raises(EmbedkitError, match="could not export BertModel for model backend openvino \\(RuntimeError: "
                                            "Model wasn't fully converted\\); use model backend torch"):
        encoder.encode_documents(texts)


def test_missing_runtime_and_wrong_precision_are_errors_before_work(monkeypatch, minilm_path):
    with pytest.raises(EmbedkitError, match="precision int8 is not available with model backend torch"):
        load_encoder("dense", minilm_path, EncodeSettings(precision="int8"))
    with pytest.raises(EmbedkitError, match="precision bf16 is not available with model backend onnx"):
        load_encoder("dense", minilm_path, EncodeSettings(precision="bf16", model_backend="onnx"))
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None if name == "openvino" else real(name))
    with pytest.raises(EmbedkitError, match="model backend openvino needs openvino, not installed here: pip install"):
        load_encoder("dense", minilm_path, EncodeSettings(model_backend="openvino"))


@pytest.mark.skipif(not precision.cpu_bf16_features(), reason="CPU without AVX512-BF16/AMX")
def test_openvino_bf16_matches_torch(minilm_path, texts):
    pytest.importorskip("openvino")
    expected = load_encoder("dense", minilm_path).encode_documents(texts)
    encoder = load_encoder("dense", minilm_path, EncodeSettings(model_backend="openvino", precision="bf16"))
    assert max_relative_error(encoder.encode_documents(texts), expected) < precision.BF16_TOLERANCE


def test_search_flag_runs_queries_on_the_backend(tiny_indexes, capsys):
    """``embedkit search --model-backend onnx`` maps to EncodeSettings.model_backend: the query encoder runs the
    export, and finds what torch finds."""
    from embedkit.cli import main

    dense, _ = tiny_indexes
    query = ["Return the sum of a list"]
    assert main(["search", "--index-dir", str(dense), "--json", "-k", "3", *query]) == 0
    torch_hits = [h["id"] for h in json.loads(capsys.readouterr().out)[0]["hits"]]
    assert main(["search", "--index-dir", str(dense), "--json", "-k", "3", "--model-backend", "onnx",
                 *query]) == 0
    onnx_hits = [h["id"] for h in json.loads(capsys.readouterr().out)[0]["hits"]]
    assert onnx_hits == torch_hits


@pytest.mark.slow
def test_eval_on_a_backend_scores_like_torch(minilm_path, code_beir, embedkit_cache):
    """``embedkit eval --model-backend onnx``: the documents and the queries run the export (checked), and the
    scores are torch's."""
    from embedkit.config import EvalOptions
    from embedkit.evaluate.runner import evaluate

    torch_ = evaluate(minilm_path, code_beir, EvalOptions(use_cache=False))
    onnx = evaluate(minilm_path, code_beir, EvalOptions(use_cache=False, model_backend="onnx"))
    assert abs(onnx["ndcg@10"] - torch_["ndcg@10"]) < 2e-3
    assert len(list((embedkit_cache / "model-backends").iterdir())) == 1  # exported (once) and used
