"""The index tells the encoder its next texts before encoding the current ones (tokenisation runs ahead)."""

from embedkit.data.corpus import Corpus
from embedkit.index.encode import encode_corpus


def test_every_slice_is_announced_before_the_previous_one_is_encoded(tmp_path):
    import json

    corpus_path = tmp_path / "corpus.jsonl"
    with open(corpus_path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"_id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(25))
    events = []

    def encode(texts):
        events.append(("encode", texts[0]))
        import numpy as np

        return np.zeros((len(texts), 2), np.float32)

    shards = encode_corpus(Corpus(str(corpus_path)), encode, tmp_path / "work", {"s": 1}, shard_size=10,
                           progress=False, prepare=lambda texts: events.append(("prepare", texts[0])))
    assert [s.count for s in shards] == [10, 10, 5]
    encoded = [t for kind, t in events if kind == "encode"]
    assert encoded == ["text 0", "text 10", "text 20"]
    for text in encoded:  # each call was announced before the one before it ran
        announced = events.index(("prepare", text))
        assert announced < events.index(("encode", text))
        previous = [i for i, e in enumerate(events) if e[0] == "encode" and i < events.index(("encode", text))]
        assert not previous or announced < previous[-1]
