"""Near-duplicate clusters through the real store: signatures, SQL buckets, clusters, reports (synthweb.dedup)."""

import random
from datetime import UTC, date, datetime

import pytest

from synthweb.dedup import dedup, signature_params
from synthweb.pipeline import Page
from synthweb.report import share_report, two_phase_report
from synthweb.sampleweb import load_texts
from tests.support.store import score_two_phase

SPUN = 6  # the farm spins this many of the news site's articles


def spin(text: str, seed: int) -> str:
    """A content farm's copy: 5% of the words replaced, sentences reordered, a line of its own added."""
    rng = random.Random(seed)
    words = [("great" if rng.random() < 0.05 else w) for w in text.split()]
    sentences = " ".join(words).split(". ")
    rng.shuffle(sentences)
    return ". ".join(sentences) + " Sponsored: read more stories like this on our partner sites."


def page(snapshot: str, domain: str, i: int, text: str) -> Page:
    return Page(
        url=f"http://{domain}/{i}", snapshot=snapshot, host=domain, domain=domain, tld="example", lang="en",
        text=text, content_hash=f"{domain}:{hash(text) & 0xFFFFFFFF:08x}", word_count=len(text.split()),
        published=date(2024, 1, 1), fetched_at=datetime(2026, 12, 1, tzinfo=UTC),
    )  # fmt: skip


def web(snapshot: str = "s1") -> list[Page]:
    texts = load_texts()
    human = [t["text"] for t in texts if t["kind"] == "human"]
    machine = [t["text"] for t in texts if t["kind"] == "machine"]
    pages = [page(snapshot, "news.example", i, t) for i, t in enumerate(human[:10])]
    pages += [page(snapshot, "farm.example", i, spin(t, i)) for i, t in enumerate(human[:SPUN])]
    pages += [page(snapshot, "blog.example", i, t) for i, t in enumerate(machine[:10])]
    # An exact copy on a third domain: one document, two domains.
    pages.append(page(snapshot, "mirror.example", 0, machine[0]))
    pages[-1].content_hash = pages[10 + SPUN].content_hash
    return pages


@pytest.fixture
def stored(store):
    return score_two_phase(store, web("s1") + web("s2"), rate=1.0)


def rows(store, sql: str, params=None) -> list[tuple]:
    return store.query(sql, params)[1]


def test_spun_copies_cluster_across_domains(store, stored):
    (first, second) = dedup(store)
    assert first.snapshot == "s1" and second.snapshot == "s2"
    assert first.documents == 10 + SPUN + 10 and first.signed == first.documents
    assert first.clusters == SPUN
    # Spun pairs (2 documents, 2 domains each) and the mirrored blog post (1 document, 2 domains).
    assert first.near_duplicate_documents == 2 * SPUN + 1
    clusters = rows(
        store,
        "SELECT cluster, groupArray(domain), any(cluster_size), any(cluster_domains) FROM page_clusters "
        "WHERE snapshot = 's1' AND cluster_size > 1 GROUP BY cluster",
    )
    assert len(clusters) == SPUN
    for _, domains, size, spread in clusters:
        assert sorted(domains) == ["farm.example", "news.example"] and size == 2 and spread == 2
    mirrored = rows(
        store,
        "SELECT domain, cluster_domains FROM page_clusters WHERE url = 'http://mirror.example/0' AND snapshot = 's1'",
    )
    assert mirrored == [("mirror.example", 2)]
    alone = rows(store, "SELECT count() FROM page_clusters WHERE snapshot = 's1' AND cluster_domains = 1")
    assert alone == [(10 - SPUN + 10 - 1,)]


def test_a_rerun_without_new_documents_is_skipped_and_forced_runs_agree(store, stored):
    dedup(store)
    again = dedup(store, ["s1"])
    assert again[0].skipped and again[0].clusters == SPUN and again[0].newly_signed == 0
    forced = dedup(store, ["s1"], force=True)
    assert not forced[0].skipped and forced[0].newly_signed == 0 and forced[0].clusters == SPUN
    # Readers see the latest run only, not one row per run.
    assert rows(store, "SELECT count() FROM latest_near_duplicates WHERE snapshot = 's1'") == [(2 * SPUN + 1,)]
    assert rows(store, "SELECT count() FROM minhash_signatures WHERE params = {p:String}", {"p": signature_params()}) \
        == [(2 * (10 + SPUN + 10),)]  # fmt: skip


def test_a_stricter_threshold_splits_spun_copies(store, stored):
    (run,) = dedup(store, ["s1"], threshold=0.99)
    assert run.clusters == 0 and run.near_duplicate_documents == 1  # only the exact mirror is left


def test_reports_count_near_duplicates_and_clusters(store, stored):
    fast, strong = stored
    before = share_report(store, fast, ["domain"])
    assert all("clusters" not in r for r in before)  # unknown until dedup runs, not zero
    with pytest.raises(ValueError, match="synthweb dedup"):
        share_report(store, fast, [], count="clusters")
    dedup(store)
    by_domain = {r["domain"]: r for r in share_report(store, fast, ["domain"])}
    assert by_domain["farm.example"]["near_duplicate_documents"] == 2 * SPUN  # both snapshots
    assert by_domain["news.example"]["clusters"] == 2 * 10
    assert by_domain["blog.example"]["near_duplicate_documents"] == 2
    # Two documents (one per snapshot) are too few for a share a reader should trust; ten per snapshot are not.
    assert by_domain["mirror.example"]["too_few"] and not by_domain["blog.example"]["too_few"]
    (total,) = share_report(store, fast, [])
    (clusters,) = share_report(store, fast, [], count="clusters")
    assert total["documents"] == 2 * (10 + SPUN + 10)
    assert clusters["documents"] == clusters["clusters"] == 2 * (10 + 10)
    (two_phase,) = two_phase_report(store, fast, strong, [], count="clusters")
    assert two_phase["documents"] == 2 * (10 + 10) and two_phase["strong_documents"] == 2 * (10 + 10)
    assert two_phase["near_duplicate_documents"] == 2 * (2 * SPUN + 1)
