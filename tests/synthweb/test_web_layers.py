"""Each domain's layer per period, the split per layer and the transitions (synthweb.layers)."""

import pytest

from synthweb.layers import domain_layers, layer_of, summarize, transitions


def row(period, domain, share, low, high, documents=20, near=0):
    return {"snapshot": period, "domain": domain, "share": share, "ci_low": low, "ci_high": high,
            "documents": documents, "near_duplicate_documents": near}  # fmt: skip


def test_the_interval_decides_the_layer():
    assert layer_of(row("a", "x", 0.9, 0.7, 0.99)) == "synthetic"
    assert layer_of(row("a", "x", 0.1, 0.0, 0.3)) == "human"
    assert layer_of(row("a", "x", 0.6, 0.3, 0.8)) == "uncertain"  # the point estimate alone would say synthetic
    assert layer_of(row("a", "x", None, None, None)) == "uncertain"
    assert layer_of(row("a", "x", 0.4, 0.25, 0.45), cut=0.2) == "synthetic"


def test_summary_counts_domains_documents_and_near_duplicates_per_layer():
    entries = domain_layers(
        [row("s1", "a", 0.1, 0.0, 0.2, 30, 3), row("s1", "b", 0.9, 0.8, 1.0, 10, 10),
         row("s1", "c", 0.5, 0.2, 0.8, 10), row("s1", "empty", None, None, None, 0)],
        "snapshot",
    )  # fmt: skip
    assert [e["domain"] for e in entries] == ["a", "b", "c"]  # a domain without documents has no layer
    by_layer = {s["layer"]: s for s in summarize(entries)}
    assert by_layer["human"] | {} == {
        "period": "s1", "layer": "human", "domains": 1, "documents": 30, "domain_share": 1 / 3,
        "document_share": 0.6, "near_duplicate_rate": 0.1,
    }  # fmt: skip
    assert by_layer["synthetic"]["near_duplicate_rate"] == 1.0
    assert by_layer["uncertain"]["domains"] == 1
    assert sum(s["document_share"] for s in by_layer.values()) == pytest.approx(1.0)


def test_transitions_name_the_domains_that_moved():
    entries = domain_layers(
        [row("s1", "a", 0.1, 0.0, 0.2), row("s1", "b", 0.1, 0.0, 0.2), row("s1", "c", 0.9, 0.8, 1.0),
         row("s2", "a", 0.9, 0.7, 1.0), row("s2", "b", 0.1, 0.0, 0.2), row("s2", "c", 0.5, 0.3, 0.7),
         row("s2", "new", 0.9, 0.8, 1.0)],
        "snapshot",
    )  # fmt: skip
    assert transitions(entries) == [
        {"from_period": "s1", "to_period": "s2", "from": "human", "to": "synthetic", "domains": 1, "examples": ["a"]},
        {"from_period": "s1", "to_period": "s2", "from": "synthetic", "to": "uncertain", "domains": 1,
         "examples": ["c"]},
    ]  # fmt: skip


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="period"):
        domain_layers([], "week")
    with pytest.raises(ValueError, match="cut"):
        domain_layers([], "snapshot", cut=1.5)
