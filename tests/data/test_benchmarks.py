"""The benchmark registry: names, groups, the paper's averaging, and the listing."""

from __future__ import annotations

import pytest

from embedkit.data.benchmarks import (
    BEIR_15,
    BENCHMARKS,
    CQADUPSTACK_FORUMS,
    CSN_LANGUAGES,
    get_benchmark,
    group_averages,
    list_benchmarks_table,
    resolve_benchmarks,
)
from embedkit.errors import EmbedkitError


def test_registry_holds_the_paper_sets():
    assert len(BEIR_15) == 15 and BEIR_15[-1] == "beir/cqadupstack"
    assert {b.split for b in BENCHMARKS.values() if b.name != "beir/msmarco"} == {"test"}
    assert get_benchmark("beir/msmarco").split == "dev"
    assert get_benchmark("mldr").max_length == 8192 and get_benchmark("mldr").source == "Shitao/MLDR"
    assert {b.max_length for n, b in BENCHMARKS.items() if n != "mldr"} == {512}
    assert get_benchmark("beir/webis-touche2020").source.endswith("/BEIR/datasets/webis-touche2020.zip")
    cqa = get_benchmark("beir/cqadupstack")
    assert cqa.is_aggregate and cqa.members == tuple(f"beir/cqadupstack/{f}" for f in CQADUPSTACK_FORUMS)
    assert all(BENCHMARKS[m].subset == m.rsplit("/", 1)[1] and BENCHMARKS[m].source == cqa.source for m in cqa.members)
    assert [get_benchmark(f"csn/{lang}").subset for lang in CSN_LANGUAGES] == list(CSN_LANGUAGES)
    assert get_benchmark("coir/stackoverflow-qa").source == "CoIR-Retrieval/stackoverflow-qa"


def test_resolve_groups_and_single_sets():
    names = [b.name for b in resolve_benchmarks("beir,csn/python")]
    assert names == list(BEIR_15) + ["csn/python"]
    assert [b.name for b in resolve_benchmarks("beir/scifact")] == ["beir/scifact"]
    assert [b.name for b in resolve_benchmarks("beir-dev4")] == ["beir/nfcorpus", "beir/scifact", "beir/trec-covid",
                                                                  "beir/fiqa"]
    assert [b.name for b in resolve_benchmarks("csn")] == [f"csn/{lang}" for lang in CSN_LANGUAGES]
    # duplicates collapse, order is kept, aliases and a missing beir/ prefix are accepted
    assert [b.name for b in resolve_benchmarks(" SciFact , beir/scifact,touche2020,sqa,mldr")] == [
        "beir/scifact", "beir/webis-touche2020", "coir/stackoverflow-qa", "mldr"]
    assert [b.name for b in resolve_benchmarks(["beir/cqadupstack/gis"])] == ["beir/cqadupstack/gis"]
    assert len(resolve_benchmarks("paper")) == 15 + 1 + 6 + 1


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(EmbedkitError) as excinfo:
        resolve_benchmarks("beir,scifacts")
    message = str(excinfo.value)
    assert "unknown benchmark 'scifacts'" in message and "Did you mean" in message and "beir/scifact" in message
    assert "beir-dev4" in message and "csn/python" in message and "coir/stackoverflow-qa" in message
    assert "--data" in message
    with pytest.raises(EmbedkitError, match="no benchmark named"):
        resolve_benchmarks(" , ")
    with pytest.raises(EmbedkitError, match="unknown benchmark"):
        get_benchmark("beir")  # a group, not a single set


def test_cqadupstack_is_averaged_over_forums_first():
    scores = {name: 0.5 for name in BEIR_15 if name != "beir/cqadupstack"}  # 14 sets at 0.5
    forums = {f"beir/cqadupstack/{f}": (0.2 if i % 2 else 0.4) for i, f in enumerate(CQADUPSTACK_FORUMS)}
    averages = group_averages({**scores, **forums})
    assert averages["beir/cqadupstack"].mean == pytest.approx(0.3) and averages["beir/cqadupstack"].complete
    assert averages["beir"].complete and averages["beir"].expected == 15
    # the paper's average: 14 sets and CQADupStack once, not 26 numbers
    assert averages["beir"].mean == pytest.approx((14 * 0.5 + 0.3) / 15)
    assert averages["beir-dev4"].mean == pytest.approx(0.5)
    assert averages["csn"].mean is None and len(averages["csn"].missing) == 6


def test_partial_groups_say_what_is_missing():
    forums = {f"beir/cqadupstack/{f}": 0.3 for f in CQADUPSTACK_FORUMS[:5]}
    averages = group_averages({"beir/scifact": 0.6, "beir/nfcorpus": 0.4, **forums, "csn/go": 0.9})
    cqa = averages["beir/cqadupstack"]
    assert not cqa.complete and len(cqa.found) == 5 and cqa.mean == pytest.approx(0.3)
    beir = averages["beir"]
    # an incomplete CQADupStack does not count towards BEIR
    assert beir.found == ("beir/nfcorpus", "beir/scifact") and "beir/cqadupstack" in beir.missing
    assert beir.mean == pytest.approx(0.5) and not beir.complete
    assert averages["csn"].found == ("csn/go",)


def test_a_direct_cqadupstack_score_is_used_without_forums():
    averages = group_averages({"beir/cqadupstack": 0.35})
    assert averages["beir/cqadupstack"].mean == pytest.approx(0.35)
    assert averages["beir"].found == ("beir/cqadupstack",)


def test_listing_names_every_benchmark():
    table = list_benchmarks_table()
    lines = table.splitlines()
    assert lines[0].split() == ["name", "source", "split", "size", "metric", "max_length", "documents"]
    row = next(line for line in lines if line.startswith("mldr "))
    assert "Shitao/MLDR" in row and "8192" in row and "test" in row and row.endswith("title+text")
    assert next(line for line in lines if line.startswith("csn/python ")).endswith(" text")  # CoIR: text alone
    assert next(line for line in lines if line.startswith("beir/msmarco ")).split()[3] == "dev"
    assert "beir/cqadupstack/android" not in table and "android" in table
    assert "beir/cqadupstack/android" in list_benchmarks_table(include_forums=True)
    for name in BENCHMARKS:
        if not name.startswith("beir/cqadupstack/"):
            assert any(line.startswith(name + " ") for line in lines), name
