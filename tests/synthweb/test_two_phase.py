"""Two-phase scoring through the real stages and store: the sample, its weights, rescore --sample, the report."""

from datetime import UTC, date, datetime

import pytest

from detectors.runtime import load_detector
from synthweb.pipeline import Page, Pipeline
from synthweb.report import share_report, two_phase_report
from synthweb.rescore import RescoreError, rescore
from synthweb.sampleweb import load_texts
from synthweb.sampling import StrongRate, sample_key
from synthweb.score import ScoreStage
from synthweb.store import StoreStage
from synthweb.twophase import SMALL_SAMPLE, SMALL_SAMPLE_METHOD
from tests.support.store import clear, score_two_phase


def pages() -> list[Page]:
    out = []
    for i, record in enumerate(load_texts()):
        domain = "news.example" if i % 2 else "blog.example"
        out.append(
            Page(
                url=f"http://{domain}/{i}",
                snapshot="tp",
                host=domain,
                domain=domain,
                tld="example",
                lang="en",
                text=record["text"],
                content_hash=f"c{i}",
                word_count=len(record["text"].split()),
                published=date(2024, 1, 1),
                fetched_at=datetime(2026, 12, 1, tzinfo=UTC),
            )  # fmt: skip
        )
    return out


@pytest.fixture
def scored(store):
    """The sample texts scored two-phase (hashed on every page, lexical at rate 0.3) into a clean store."""
    return score_two_phase(store, pages(), rate=0.3)


def counts(store, sql: str) -> list[tuple]:
    return store.query(sql)[1]


def test_every_page_is_scored_fast_and_the_sample_strong_with_its_probability(store, scored):
    fast, strong = scored
    documents = [p for p in pages() if p.word_count >= 50]
    picked = {p.content_hash for p in documents if sample_key(p.snapshot, p.content_hash) < 0.3}
    assert 5 < len(picked) < len(documents) - 5
    rows = counts(store, "SELECT detector, count(), min(inclusion), max(inclusion) FROM pages GROUP BY detector")
    by = {r[0]: r[1:] for r in rows}
    assert by["hashed"][0] == len(pages()) and by["hashed"][1:] == (1.0, 1.0)
    assert by["lexical"][0] == len(picked) and by["lexical"][1:] == pytest.approx((0.3, 0.3))
    stored = {r[0] for r in counts(store, "SELECT content_hash FROM pages WHERE detector = 'lexical'")}
    assert stored == picked


def test_the_two_phase_report_counts_every_document_and_the_sample(store, scored):
    fast, strong = scored
    rows = {r["domain"]: r for r in two_phase_report(store, fast, strong, ["domain"])}
    single = {r["domain"]: r for r in share_report(store, fast, ["domain"])}
    strong_rows = dict(counts(store, "SELECT domain, count() FROM pages WHERE detector = 'lexical' GROUP BY domain"))
    for domain, row in rows.items():
        assert row["documents"] == single[domain]["documents"]  # the population is every fast-scored document
        assert row["strong_documents"] == strong_rows[domain]
        assert row["method"].startswith("two-phase ")
        assert 0.0 <= row["ci_low"] <= row["share"] <= row["ci_high"] <= 1.0


def test_rescore_sample_raises_the_rate_and_rate_one_gives_the_strong_detectors_own_share(store, scored):
    fast, strong = scored
    before = counts(store, "SELECT count() FROM pages WHERE detector = 'lexical'")[0][0]
    summary = rescore(store, strong, sample=0.6)
    keys = [sample_key("tp", f"c{i}") for i, p in enumerate(pages()) if p.word_count >= 50]
    assert summary["raised"] == before  # the earlier picks now count at 0.6
    every = [sample_key("tp", p.content_hash) for p in pages()]  # rescore stores short pages too, excluded
    assert summary["rescored"] == sum(k < 0.6 for k in every) - before
    assert rescore(store, strong, sample=0.6)["rescored"] == 0  # idempotent
    [(low, high)] = counts(
        store,
        "SELECT min(pi), max(pi) FROM (SELECT content_hash, max(inclusion) AS pi FROM (SELECT content_hash, "
        "inclusion FROM pages WHERE detector = 'lexical' UNION ALL SELECT content_hash, inclusion FROM "
        "sample_inclusion) GROUP BY content_hash)",
    )
    assert low == pytest.approx(0.6) and high == pytest.approx(0.6)
    [row] = two_phase_report(store, fast, strong, [])
    assert row["strong_documents"] == sum(k < 0.6 for k in keys)
    rescore(store, strong)  # every page: the two-phase share is the strong detector's own
    [row] = two_phase_report(store, fast, strong, [])
    # Under twophase.SMALL_SAMPLE strong documents the two-phase report estimates with em: compare like with like.
    assert row["method"] == f"two-phase {SMALL_SAMPLE_METHOD}" and row["strong_documents"] < SMALL_SAMPLE
    [own] = share_report(store, strong, [], method=SMALL_SAMPLE_METHOD)
    assert row["strong_documents"] == row["documents"] == own["documents"]
    assert row["share"] == pytest.approx(own["share"], abs=1e-9)
    with pytest.raises(RescoreError, match="--sample"):
        rescore(store, strong, sample=1.5)


def test_a_slice_the_sample_missed_has_no_share_and_says_why(store):
    clear(store)
    fast, strong = load_detector("hashed"), load_detector("lexical")
    store.record_calibration(strong)
    stage = ScoreStage(fast, strong=strong, rate=StrongRate(1e-9))
    Pipeline([stage, StoreStage(store)]).process(pages()[:6])
    [row] = two_phase_report(store, fast, strong, [])
    assert row["strong_documents"] == 0 and row["share"] is None and "rescore --sample" in row["note"]
