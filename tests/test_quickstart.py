import json

import pytest


@pytest.mark.slow  # trains the packaged MiniLM for a few steps and indexes 300 documents twice
def test_fine_tuning_minilm_raises_ndcg_on_unseen_code(tmp_path, capsys):
    """The quickstart at a small size: in-domain pairs from site-packages lift nDCG@10 on stdlib code."""
    from embedkit.quickstart import run_quickstart

    rows = run_quickstart(workdir=tmp_path / "qs", train_size=480, eval_size=300, max_steps=15, colbert=False)
    by_name = {row.name: row for row in rows}
    base, tuned = by_name["MiniLM base (dense)"], by_name["MiniLM fine-tuned (dense)"]
    assert tuned.ndcg > base.ndcg
    assert by_name["BM25 (bm25s)"].ndcg > 0
    out = capsys.readouterr().out
    assert "| MiniLM fine-tuned (dense) |" in out and "SPLADE" not in out  # the sparse rows are asked for
    assert (tmp_path / "qs" / "results.md").is_file()
    # like for like: both MiniLM rows read documents up to MiniLM's own 256 tokens, recorded in each results JSON
    lengths = {p.parent.name: json.loads(p.read_text())["max_length"]
               for p in (tmp_path / "qs").glob("minilm-code-run/eval/*/*.json")}
    assert lengths == {"bm25": None, "all-MiniLM-L6-v2": 256, "minilm-code": 256}


@pytest.mark.slow  # trains MiniLM dense and SPLADE for a few steps each and indexes 200 documents three times
def test_quickstart_sparse_and_hybrid_rows(tmp_path, capsys):
    """The sparse row (SPLADE on the same pairs) and the hybrid row (RRF with the dense model), with times."""
    from embedkit.quickstart import run_quickstart

    rows = run_quickstart(workdir=tmp_path / "qs", train_size=160, eval_size=200, max_steps=4, colbert=False,
                          sparse=True)
    by_name = {row.name: row for row in rows}
    sparse = by_name["MiniLM fine-tuned (SPLADE, sparse-exact)"]
    hybrid = by_name["hybrid: RRF(SPLADE, dense fine-tuned)"]
    assert 0 <= sparse.ndcg <= 1 and hybrid.ndcg > 0 and sparse.seconds > 0 and hybrid.seconds > 0
    assert "| hybrid: RRF(SPLADE, dense fine-tuned) |" in capsys.readouterr().out
