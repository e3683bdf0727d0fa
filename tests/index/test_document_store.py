import json

import numpy as np
import pytest

from embedkit.errors import EmbedkitError
from embedkit.index.base import FORMAT_VERSION, MANIFEST, DocumentStore, IndexManifest

DOCS = [("a", "first text"), ("ü-2", "zweiter Text\nmit Zeilenumbruch"), ('q"3', ""), ("line\nid", "x" * 10_000)]


def test_ids_and_texts_by_position(tmp_path):
    assert DocumentStore.write(tmp_path, iter(DOCS)) == len(DOCS)
    store = DocumentStore(tmp_path)
    ids = store.ids
    assert len(ids) == len(DOCS)
    assert [ids[i] for i in range(len(DOCS))] == [d for d, _ in DOCS]
    assert list(ids) == [d for d, _ in DOCS] and ids[-1] == "line\nid" and ids[1:3] == ["ü-2", 'q"3']
    assert [store.text(i) for i in range(len(DOCS))] == [t for _, t in DOCS]
    with pytest.raises(IndexError):
        ids[len(DOCS)]


def test_ids_are_read_on_demand_not_loaded_whole(tmp_path):
    DocumentStore.write(tmp_path, ((f"d{i}", f"text {i}") for i in range(1000)))
    ids = DocumentStore(tmp_path).ids
    assert ids[999] == "d999" and ids[0] == "d0"
    assert isinstance(ids._offsets, np.memmap) and not any(isinstance(v, list) for v in vars(ids).values())


def test_append_continues_positions(tmp_path):
    DocumentStore.write(tmp_path, DOCS[:2])
    assert DocumentStore.append(tmp_path, DOCS[2:]) == len(DOCS)
    assert DocumentStore.append(tmp_path, []) == len(DOCS)
    store = DocumentStore(tmp_path)
    assert list(store.ids) == [d for d, _ in DOCS] and store.ids[3] == "line\nid"
    assert store.text(3) == "x" * 10_000


def test_empty_store(tmp_path):
    assert DocumentStore.write(tmp_path, []) == 0
    ids = DocumentStore(tmp_path).ids
    assert len(ids) == 0 and list(ids) == []


def test_an_older_index_format_asks_for_a_rebuild(tmp_path):
    manifest = IndexManifest("dense", "faiss", "m", "fp", 8, True, 1, "c")
    manifest.save(tmp_path)
    assert IndexManifest.load(tmp_path).format_version == FORMAT_VERSION
    raw = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps(raw | {"format_version": FORMAT_VERSION - 1}))
    with pytest.raises(EmbedkitError, match="Rebuild it"):
        IndexManifest.load(tmp_path)
