"""An index built with precision bf16 records it and encodes its queries the same way (index, eval, serve)."""

import json

import numpy as np
import pytest

from embedkit.config import IndexSettings
from embedkit.data.corpus import Corpus
from embedkit.index.build import build_index, open_index
from embedkit.models import precision

pytestmark = pytest.mark.skipif(not precision.cpu_bf16_features(), reason="hardware: a CPU without AVX512-BF16/AMX")


@pytest.mark.slow  # two MiniLM indexes
def test_bf16_index_records_its_precision_and_finds_what_fp32_finds(tmp_path, minilm_path, code_pairs):
    with open(tmp_path / "corpus.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": p.id, "text": p.code}) + "\n" for p in code_pairs[:120])
    corpus = Corpus(str(tmp_path / "corpus.jsonl"))
    indexes = {}
    for name in ("fp32", "bf16"):
        folder = tmp_path / name
        build_index(minilm_path, corpus, folder, IndexSettings(backend="flat", precision=name), progress=False)
        indexes[name] = open_index(folder)
    assert indexes["bf16"].manifest.settings["precision"] == "bf16"
    assert isinstance(indexes["bf16"].encoder, precision.PrecisionEncoder)
    assert not isinstance(indexes["fp32"].encoder, precision.PrecisionEncoder)
    queries = [p.query for p in code_pairs[:30]]
    top = {name: [hits[0].id for hits in index.search(queries, k=1)] for name, index in indexes.items()}
    assert np.mean([a == b for a, b in zip(top["fp32"], top["bf16"])]) >= 0.9
