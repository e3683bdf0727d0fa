import json

import pytest

from embedkit.data.corpus import Corpus
from embedkit.evaluate.chunking import ChunkedCorpus, base_id, max_pool
from embedkit.evaluate.runner import EvalOptions, evaluate


def test_windows_respect_the_token_budget(tmp_path, minilm_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    text = " ".join(f"word{i}" for i in range(300))
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"_id": "long", "text": text}) + '\n{"_id": "short", "text": "tiny"}\n')
    chunks = list(ChunkedCorpus(Corpus(str(path)), tokenizer, max_tokens=64))
    assert [base_id(c) for c, _ in chunks].count("long") > 1 and chunks[-1] == ("short\x1f0", "tiny")
    for _, window in chunks:
        assert len(tokenizer(window, add_special_tokens=False)["input_ids"]) <= 62
    assert "word0" in chunks[0][1] and "word299" in chunks[-2][1]


def test_max_pool_keeps_best_window():
    assert max_pool({"q": {"a\x1f0": 0.1, "a\x1f1": 0.9, "b\x1f0": 0.5}}) == {"q": {"a": 0.9, "b": 0.5}}


def test_chunking_finds_what_truncation_cuts_off(tmp_path, minilm_path, code_pairs, make_beir):
    filler = " ".join(p.query for p in code_pairs[:40])
    corpus = [("long", filler + " The zebra crossing password is kept in the vault.")]
    corpus += [(p.id, p.code) for p in code_pairs[40:80]]
    folder = make_beir(tmp_path / "beir", corpus, [("q", "zebra crossing password vault")], [("q", "long", 1)])
    truncated = evaluate(minilm_path, folder, EvalOptions(max_length=64))
    chunked = evaluate(minilm_path, folder, EvalOptions(max_length=64, long_documents="chunk-maxpool"))
    assert chunked["long_documents"] == "chunk-maxpool" and chunked["num_documents"] == 41
    assert chunked["mrr@10"] == pytest.approx(1.0)
    assert truncated["mrr@10"] < 1.0
