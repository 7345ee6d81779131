"""The strong detector's sample: reproducible keys (the same in SQL), fixed and auto rates."""

import pytest

from synthweb.pipeline import Page
from synthweb.sampling import SAMPLE_KEY_SQL, StrongRate, parse_rate, sample_key


def pages(n: int, domain: str = "a.example", snapshot: str = "s1") -> list[Page]:
    return [Page(url=f"http://{domain}/{i}", snapshot=snapshot, domain=domain, content_hash=f"h{i}") for i in range(n)]


def test_sample_keys_are_uniform_reproducible_and_nested():
    keys = [sample_key("s1", f"h{i}") for i in range(4000)]
    assert keys == [sample_key("s1", f"h{i}") for i in range(4000)]
    assert all(0.0 <= k < 1.0 for k in keys)
    assert sum(k < 0.2 for k in keys) == pytest.approx(800, abs=80)  # 4.5 sd
    assert sample_key("s2", "h1") != sample_key("s1", "h1")  # a new snapshot draws afresh
    # The key decides against the rate, so a higher rate picks a superset.
    low, high = {i for i, k in enumerate(keys) if k < 0.05}, {i for i, k in enumerate(keys) if k < 0.2}
    assert low < high


def test_sql_computes_the_same_sample_key(store):
    rows = [("s1", "abc"), ("run-2026", "0" * 40), ("é", "h\u00e9")]
    _, found = store.query(
        f"SELECT {SAMPLE_KEY_SQL} FROM (SELECT arrayJoin({{r:Array(Tuple(String, String))}}) AS t, "
        "t.1 AS snapshot, t.2 AS content_hash)",
        {"r": rows},
    )
    assert [f[0] for f in found] == pytest.approx([sample_key(s, h) for s, h in rows], abs=1e-12)


def test_parse_rate():
    assert parse_rate("auto") is None and parse_rate(None) is None
    assert parse_rate("0.05") == 0.05 and parse_rate(1) == 1.0
    for bad in ("0", "1.5", "-0.1", "fast"):
        with pytest.raises(ValueError, match="strong rate"):
            parse_rate(bad)


def test_a_fixed_rate_is_applied_as_given():
    rate = StrongRate(0.2, min_documents=30)
    assert rate.inclusion(pages(40)) == [0.2] * 40  # no minimum: the user chose the rate


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_auto_keeps_the_strong_cpu_within_its_budget_after_each_sites_minimum():
    clock = Clock()
    rate = StrongRate(None, min_documents=3, budget=0.5, clock=clock)
    assert rate.inclusion(pages(5)) == [1.0] * 5  # the minimum, then an unknown cost: 1 (this batch measures it)
    rate.spent(3.0, 3)
    clock.now = 3.0  # start-up before the first batch never counts; the strong detector's 3 s are its own
    # 1 s per document, the job's pace not seen yet: the assumed 10 ms per page -> 0.5 * 0.01 / 1
    assert rate.current() == pytest.approx(0.005)
    assert rate.inclusion(pages(10)) == [pytest.approx(0.005)] * 10  # site a's minimum is spent
    clock.now += 10 * 0.05  # the rest of the job: 50 ms per page
    assert rate.current() == pytest.approx(0.5 * 0.05 / 1.0)
    assert rate.inclusion(pages(2, domain="b.example")) == [1.0, 1.0]  # a new site gets its minimum


def test_auto_on_a_gpu_scores_every_page():
    rate = StrongRate(None, min_documents=0, on_gpu=True)
    rate.spent(100.0, 1)
    assert rate.inclusion(pages(10)) == [1.0] * 10
