from datetime import UTC, date, datetime

import pytest

from synthweb.pipeline import Page
from synthweb.store import Store, StoreError, StoreStage, normalize_dsn, redact, split_sql
from tests.support.store import clear


def page(i: int, **fields) -> Page:
    values = dict(
        url=f"http://a.example/{i}",
        snapshot="s1",
        host="a.example",
        domain="a.example",
        tld="example",
        lang="en",
        text="word " * 80,
        content_hash=f"h{i}",
        word_count=80,
        detector="lexical",
        detector_version="1",
        p_synthetic=0.9,
        published=date(2024, 5, 1),
        fetched_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    values.update(fields)
    return Page(**values)


def test_normalize_dsn_makes_relative_chdb_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_dsn("chdb:///./data") == f"chdb:///{tmp_path.resolve().as_posix().lstrip('/')}/data"
    assert normalize_dsn("chdb:data") == normalize_dsn("chdb://data")
    assert normalize_dsn("chdb://memory") == "chdb://memory"
    assert normalize_dsn("https://u:p@h:8443/db") == "https://u:p@h:8443/db"
    with pytest.raises(StoreError, match="unsupported store DSN"):
        normalize_dsn("postgres://x")


def test_redact_hides_password():
    assert redact("https://bob:s3cret@host:8443/db") == "https://bob:***@host:8443/db"


def test_unwritable_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot write store"):
        Store(f"chdb:///{blocker}/db")


def test_split_sql_drops_comments():
    assert split_sql("-- a; comment\nCREATE TABLE t (x UInt8);\n\nSELECT 1;") == [
        "CREATE TABLE t (x UInt8)",
        "SELECT 1",
    ]


def test_migrations_are_idempotent(store):
    assert store.migrate() == []
    _, rows = store.query("SELECT name FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows][:3] == ["001_pages.sql", "002_skipped_pages.sql", "003_page_stats.sql"]


def test_migrate_recreates_dropped_tables_and_refills_the_aggregates(store):
    clear(store)
    list(StoreStage(store).run([page(1), page(2, p_synthetic=0.1), page(3, excluded="short")]))
    totals = "SELECT sum(pages), sum(excluded), uniqExactMerge(documents) FROM page_stats"
    before = store.query(totals)[1]
    reasons = store.query("SELECT reason, sum(pages) FROM page_exclusions GROUP BY reason")[1]
    for statement in ("DROP TABLE page_stats", "DROP TABLE page_exclusions", "DROP TABLE page_exclusions_mv"):
        store.client.command(statement)
    assert store.migrate() == ["recreated page_exclusions", "recreated page_exclusions_mv", "recreated page_stats"]
    assert store.query(totals)[1] == before == [(3, 1, 2)]
    assert store.query("SELECT reason, sum(pages) FROM page_exclusions GROUP BY reason")[1] == reasons
    list(StoreStage(store).run([page(9)]))  # the views feed the recreated tables again
    assert store.query("SELECT sum(pages) FROM page_stats")[1] == [(4,)]
    assert store.migrate() == []


def test_store_stage_writes_pages_skips_and_aggregates(store):
    clear(store)
    pages = [page(1), page(2, p_synthetic=0.1), page(3, content_hash="h1"), page(4, excluded="short")]
    pages.append(Page(url="http://a.example/big", snapshot="s1", skip="too_large", skip_detail="31457280 bytes"))
    out = list(StoreStage(store).run(pages))
    assert out == pages  # the stage passes every page on
    assert store.query("SELECT count() FROM pages")[1] == [(4,)]
    assert store.query("SELECT reason, host FROM skipped_pages")[1] == [("too_large", "a.example")]
    _, rows = store.query(
        "SELECT sum(pages), sum(excluded), uniqExactMerge(documents), "
        "uniqExactResampleMerge(0, 50, 1)(hist) FROM page_stats"
    )
    pages_count, excluded, documents, hist = rows[0]
    assert (pages_count, excluded, documents) == (4, 1, 2)  # h1 twice counts once; the short page is left out
    assert hist[45] == 1 and hist[5] == 1 and sum(hist) == 2


def test_retried_batch_with_same_token_is_stored_once(store):
    clear(store)
    batch = [page(i) for i in range(5)]
    stage = StoreStage(store)
    list(stage.run(batch, dedup_token="pages.raw/0/100-104"))
    list(stage.run(batch, dedup_token="pages.raw/0/100-104"))
    assert store.query("SELECT count() FROM pages")[1] == [(5,)]
    assert store.query("SELECT sum(pages) FROM page_stats")[1] == [(5,)]


def test_duplicates_count_once_per_snapshot(store):
    clear(store)
    batch = [
        page(1, snapshot="s1"),
        page(2, snapshot="s1", content_hash="h1"),
        page(3, snapshot="s2", content_hash="h1"),
    ]
    list(StoreStage(store).run(batch))
    _, rows = store.query(
        "SELECT snapshot, sum(pages), uniqExactMerge(documents) FROM page_stats GROUP BY snapshot ORDER BY snapshot"
    )
    assert rows == [("s1", 2, 1), ("s2", 1, 1)]
    assert store.query("SELECT uniqExactMerge(documents) FROM page_stats")[1] == [(2,)]


def test_sql_and_python_bin_scores_identically(store):
    import numpy as np

    from synthweb.estimate import histogram

    clear(store)
    scores = np.concatenate([np.random.default_rng(4).random(500), np.arange(51) / 50])
    list(StoreStage(store).run([page(i, p_synthetic=float(s)) for i, s in enumerate(scores)]))
    _, rows = store.query("SELECT uniqExactResampleMerge(0, 50, 1)(hist) FROM page_stats")
    assert list(rows[0][0]) == histogram(scores, 50).tolist()


def test_stored_offset_is_the_high_water_mark_of_a_source(store):
    clear(store)
    assert store.stored_offset("pages.raw/0") == -1
    batch = [page(i, source="pages.raw/0", source_offset=100 + i) for i in range(3)]
    batch.append(Page(url="http://a.example/x", snapshot="s1", skip="binary", source="pages.raw/0", source_offset=107))
    batch.append(page(9, source="pages.raw/1", source_offset=5))
    list(StoreStage(store).run(batch))
    assert store.stored_offset("pages.raw/0") == 107
    assert store.stored_offset("pages.raw/1") == 5
    # the Faust worker reads its mark from `pages` only (the store stage writes pages last)
    assert store.stored_offset("pages.raw/0", tables=("pages",)) == 102
    with pytest.raises(ValueError, match="unknown tables"):
        store.stored_offset("pages.raw/0", tables=("page_stats",))


def test_stored_urls_finds_pages_and_skips_of_the_same_snapshot(store):
    clear(store)
    skipped = Page(url="http://a.example/gone", snapshot="s1", skip="http_404")
    list(StoreStage(store).run([page(1), page(2, snapshot="s2"), skipped]))
    asked = {("s1", "http://a.example/1"), ("s1", "http://a.example/2"), ("s1", "http://a.example/gone")}
    expected = {("s1", "http://a.example/1"), ("s1", "http://a.example/gone")}
    assert store.stored_urls(asked) == expected
    assert store.stored_urls(asked, domains={"a.example"}) == expected
    assert store.stored_urls(asked, domains={"b.example"}) == {("s1", "http://a.example/gone")}
    assert store.stored_urls(set()) == set()


SHARED_WRITER = """
import sys
from tests.synthweb.test_store import page
from synthweb.store import Store, StoreError

store = Store(sys.argv[1], shared=True)
store.migrate()
try:
    store.client
    sys.exit("the shared store was held outside a turn")
except StoreError:
    pass
for i in range(int(sys.argv[3])):
    with store.turn():  # the worker holds a turn per batch: the check and the insert in one
        (n,), = store.query("SELECT count() FROM pages")[1]
        store.insert_pages([page(int(sys.argv[2]) * 1000 + i)])
print("ok")
"""


def test_a_shared_embedded_store_takes_writes_from_several_processes(tmp_path):
    """Three processes write one chDB store at once, each holding it only during its turns (in subprocesses:
    this test process has its own chDB store open)."""
    import os
    import subprocess
    import sys

    from tests.support.stream import REPO_ROOT, store_query

    dsn = f"chdb:///{tmp_path}/shared"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", SHARED_WRITER, dsn, str(w), "15"], cwd=REPO_ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(3)
    ]  # fmt: skip
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.strip() == "ok", err[-2000:]
    assert store_query(dsn, "SELECT count() AS n, uniqExact(url) AS urls FROM pages") == [{"n": 45, "urls": 45}]
