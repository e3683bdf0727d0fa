import json

import numpy as np
import pytest

from embedkit.data import corpus as corpus_module
from embedkit.data.corpus import Corpus
from embedkit.data.id_check import IdHashes
from embedkit.errors import EmbedkitError


def test_seen_matches_a_set_across_many_runs():
    rng = np.random.default_rng(0)
    hashes, reference = IdHashes(), set()
    for size in rng.integers(1, 300, size=40):
        batch = rng.integers(0, 20_000, size=size).astype(np.int64)
        batch = np.unique(batch)
        expected = np.array([int(h) in reference for h in batch])
        np.testing.assert_array_equal(hashes.seen(batch), expected)
        fresh = batch[~expected]
        hashes.add(fresh)
        reference.update(int(h) for h in fresh)
    assert hashes.count == len(reference)
    assert hashes.nbytes == 8 * len(reference)  # the point: 8 bytes an id, not a Python set
    assert len(hashes._runs) <= int(np.log2(len(reference))) + 1


def _write(path, ids):
    path.write_text("".join(json.dumps({"_id": i, "text": f"text of {i}"}) + "\n" for i in ids))
    return path


@pytest.mark.parametrize("batch", [2, 3, 4096])
def test_duplicate_in_another_batch_names_both_lines(tmp_path, monkeypatch, batch):
    monkeypatch.setattr(corpus_module, "ID_CHECK_BATCH", batch)
    path = _write(tmp_path / "c.jsonl", ["a", "b", "c", "d", "e", "b", "f"])
    with pytest.raises(EmbedkitError, match=rf"{path}:6: duplicate document id 'b' \(first at {path}:2\)"):
        list(Corpus(str(path)))


def test_hash_collisions_are_not_duplicates(tmp_path, monkeypatch):
    """Every id hashes to one of two values: the real ids settle it, and a real repeat is still found."""
    monkeypatch.setattr(corpus_module, "ID_CHECK_BATCH", 3)
    monkeypatch.setattr(IdHashes, "hashes", staticmethod(
        lambda ids: np.array([len(i) % 2 for i in ids], dtype=np.int64)))
    ids = [f"doc{i}" for i in range(20)]
    path = _write(tmp_path / "ok.jsonl", ids)
    assert [doc_id for doc_id, _ in Corpus(str(path))] == ids
    bad = _write(tmp_path / "bad.jsonl", ids + ["doc7"])
    with pytest.raises(EmbedkitError, match=rf"{bad}:21: duplicate document id 'doc7' \(first at {bad}:8\)"):
        list(Corpus(str(bad)))
