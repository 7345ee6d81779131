"""WARC/WET ingest: records written with warcio from the sample web, read locally and over HTTP, resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crawler.warc import OpenSource, default_snapshot, https_url, read_records, source_key
from synthweb.sampleweb import article_html, build_sites
from tests.support.crawl import write_warc

CAPTURED = "2023-06-07T08:09:10Z"


def archive_records() -> list[dict]:
    """10 HTML articles (5 human, 5 machine), a WET text, a JSON file, a truncated record, request/warcinfo."""
    news, blog, _ = build_sites()
    records: list[dict] = [{"type": "warcinfo", "body": "software: synthweb tests"}]
    for article in news.articles[:5] + blog.articles[:5]:
        url = f"http://{'news' if article in news.articles else 'blog'}.example.org{article.path}"
        host = url.split("/")[2]
        records.append({"type": "request", "url": url, "body": f"GET {article.path} HTTP/1.1\r\nHost: {host}\r\n\r\n"})
        records.append({"url": url, "body": article_html(article), "date": CAPTURED})
    records.append({"url": "http://news.example.org/data.json", "body": "{}", "content_type": "application/json"})
    records.append({"url": "http://news.example.org/moved", "body": "", "status": 301})
    truncated = {"url": "http://news.example.org/cut.html", "body": article_html(news.articles[6])}
    records.append({**truncated, "headers": {"WARC-Truncated": "length"}})
    records.append({"type": "conversion", "url": "http://wet.example.org/plain", "body": news.articles[7].text})
    return records


@pytest.fixture
def warc_file(tmp_path):
    return write_warc(tmp_path / "sample.warc.gz", archive_records())


def synthweb(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI, scoring with the fast detector: these tests are about reading archives, not detection."""
    return subprocess.run(
        [sys.executable, "-m", "synthweb.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SYNTHWEB_DETECTOR": "hashed", **(env or {})},
    )


def ingest(db: str, *sources: str, env: dict | None = None, extra: tuple[str, ...] = ()) -> dict:
    result = synthweb("ingest", "warc", "--quiet", "--db", db, *extra, *sources, env=env)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    summary = json.loads([line for line in result.stderr.splitlines() if line.startswith("{")][-1])
    summary["returncode"] = result.returncode
    return summary


QUERIES = """
import json, sys
from synthweb.store import Store
store = Store(sys.argv[1])
out = []
for query in json.loads(sys.argv[2]):
    columns, rows = store.query(query)
    out.append([dict(zip(columns, row)) for row in rows])
print(json.dumps(out, default=str))
"""


def sql(db: str, *queries: str) -> list[list[dict]]:
    """Run queries on a chDB store in one fresh process (chDB opens one path per process)."""
    result = subprocess.run(
        [sys.executable, "-c", QUERIES, db, json.dumps(queries)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_records_become_pages_and_skips(warc_file):
    key = source_key(str(warc_file))
    with OpenSource(str(warc_file)) as opened:
        records = list(read_records(opened.stream, "snap", key))
    kinds = [r.kind for r in records]
    assert kinds.count("request") == 10 and kinds[0] == "warcinfo"
    pages = [r.page for r in records if r.page is not None]
    skips = {p.url.rsplit("/", 1)[-1]: p.skip for p in pages if p.skip}
    assert skips == {"data.json": "not_html", "moved": "http_301", "cut.html": "truncated"}
    html_pages = [p for p in pages if p.html]
    assert len(html_pages) == 10 and all(p.fetched_at.isoformat() == "2023-06-07T08:09:10+00:00" for p in html_pages)
    [wet] = [p for p in pages if p.text]
    assert wet.html == "" and wet.content_type == "text/plain" and len(wet.text.split()) > 50
    offsets = [r.offset for r in records]
    assert offsets == sorted(offsets) and all(p.source == key for p in pages)
    # Resuming from one record on yields only the records after it.
    with OpenSource(str(warc_file), start=records[5].offset) as opened:
        rest = list(read_records(opened.stream, "snap", key, base=opened.base, after=records[5].offset))
    assert [r.offset for r in rest] == offsets[6:]


def test_cut_and_garbage_files_are_recorded_not_fatal(tmp_path, warc_file):
    data = warc_file.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[:-200])  # the WET record breaks off
    with OpenSource(str(cut)) as opened:
        records = list(read_records(opened.stream, "s", "k"))
    assert records[-1].page.skip in ("broken_record", "broken_file")
    garbage = tmp_path / "garbage.warc"
    garbage.write_bytes(b"this is not a WARC file\r\n" * 10)
    with OpenSource(str(garbage)) as opened:
        [record] = list(read_records(opened.stream, "s", "k"))
    assert record.kind == "broken" and record.page.skip == "broken_file" and record.page.skip_detail


@pytest.mark.parametrize("honour_range", [True, False])
def test_http_resume_with_and_without_range_support(warc_file, archive_server, honour_range):
    archive_server.honour_range = honour_range
    archive_server.files["a.warc.gz"] = warc_file.read_bytes()
    url = f"{archive_server.root}/files/a.warc.gz"
    with OpenSource(url) as opened:
        offsets = [r.offset for r in read_records(opened.stream, "s", source_key(url), base=opened.base)]
    after = offsets[10]
    with OpenSource(url, start=after) as opened:
        assert opened.base == (after if honour_range else 0)
        rest = [r.offset for r in read_records(opened.stream, "s", source_key(url), base=opened.base, after=after)]
    assert rest == offsets[11:]


def test_source_names():
    assert https_url("s3://commoncrawl/crawl-data/x.warc.gz") == "https://data.commoncrawl.org/crawl-data/x.warc.gz"
    assert https_url("s3://bucket/a/b.warc", "http://127.0.0.30:9") == "http://127.0.0.30:9/bucket/a/b.warc"
    assert https_url("s3://other/k") == "https://other.s3.amazonaws.com/k"
    assert default_snapshot("s3://commoncrawl/crawl-data/CC-MAIN-2024-10/segments/x.warc.gz") == "CC-MAIN-2024-10"
    assert default_snapshot("/tmp/my-crawl.warc.gz") == "warc-my-crawl"


@pytest.mark.slow
def test_ingest_interrupted_then_resumed_stores_every_record_once(tmp_path, warc_file):
    db = f"chdb:///{tmp_path}/store"
    first = ingest(db, str(warc_file), extra=("--max-records", "9", "--batch-size", "2"))
    assert first["stopped_early"] and first["records"] == 9  # two whole batches of 2 pages (+ requests)
    # A crash after a batch was stored but before its offset was committed: forget the last commit.
    sql(
        db,
        "ALTER TABLE ingest_progress DELETE WHERE record_offset = (SELECT max(record_offset) FROM ingest_progress) "
        "SETTINGS mutations_sync = 2",
    )
    second = ingest(db, str(warc_file), extra=("--batch-size", "2"))
    assert second["returncode"] == 0 and second["resumed_after"]
    assert first["records"] + second["records"] > 28  # the uncommitted batch was read again
    third = ingest(db, str(warc_file))  # finds nothing new
    assert third["records"] == 0
    counts, skips, dates, wet, fetched = sql(
        db,
        "SELECT count() AS n, uniqExact(url) AS urls, any(snapshot) AS snap FROM pages",
        "SELECT reason, count() AS n FROM skipped_pages GROUP BY reason ORDER BY reason",
        "SELECT date_source, count() AS n FROM pages GROUP BY date_source ORDER BY date_source",
        "SELECT lang, word_count, toString(published) AS day, detector FROM pages WHERE url LIKE '%wet%'",
        "SELECT DISTINCT toString(fetched_at) AS t FROM pages WHERE url LIKE '%/articles/%'",
    )
    assert counts == [{"n": 11, "urls": 11, "snap": "warc-sample"}]  # 10 articles + the WET text, once each
    assert skips == [{"reason": "http_301", "n": 1}, {"reason": "not_html", "n": 1}, {"reason": "truncated", "n": 1}]
    assert dates == [{"date_source": "capture", "n": 1}, {"date_source": "metadata", "n": 10}]
    [wet] = wet
    assert wet["lang"] == "en" and wet["word_count"] > 50 and wet["day"] == "2024-01-02" and wet["detector"]
    assert fetched == [{"t": "2023-06-07 08:09:10.000"}]


@pytest.mark.slow
def test_ingest_over_http_and_s3_with_range_resume(tmp_path, warc_file, archive_server):
    archive_server.files["crawl/sample.warc.gz"] = warc_file.read_bytes()
    archive_server.files["bucket/wet/sample.wet.gz"] = write_warc(
        tmp_path / "sample.wet.gz", [r for r in archive_records() if r.get("type") == "conversion"]
    ).read_bytes()
    db = f"chdb:///{tmp_path}/store"
    url = f"{archive_server.root}/files/crawl/sample.warc.gz"
    first = ingest(db, url, extra=("--max-records", "9", "--batch-size", "3", "--snapshot", "web"))
    assert first["records"] < 28
    second = ingest(
        db,
        url,
        "s3://bucket/wet/sample.wet.gz",
        f"{archive_server.root}/files/missing.warc.gz",
        env={"SYNTHWEB_S3_ENDPOINT": f"{archive_server.root}/files"},
        extra=("--snapshot", "web"),
    )
    assert second["returncode"] == 1 and list(second["failed_sources"]) == [
        f"{archive_server.root}/files/missing.warc.gz"
    ]
    ranges = [h.get("Range") for path, h in archive_server.log if path.endswith("sample.warc.gz")]
    assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=")
    [rows] = sql(db, "SELECT count() AS n, uniqExact(url, source) AS distinct FROM pages WHERE snapshot = 'web'")
    assert rows == [{"n": 12, "distinct": 12}]  # 10 articles, the WET text in the .warc.gz and in the .wet.gz
