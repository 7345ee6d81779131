"""`synthweb wayback` against a local CDX API and capture server (tests/crawler/conftest.py)."""

from __future__ import annotations

import json

import pytest

from crawler.wayback import Capture, PoliteClient, cdx_captures, pick, raw_capture_url
from synthweb.sampleweb import _page, article_html, build_sites
from tests.crawler.test_warc import sql, synthweb


def fill(server) -> dict[str, str]:
    """Captures of news.example (2020, human) and blog.example (2024, machine), with odd cases."""
    news, blog, _ = build_sites()
    for i, article in enumerate(news.articles[:4]):
        ts = f"2020{i + 1:02d}15093000"
        body = article_html(article).encode()
        server.captures.append((ts, f"http://news.example{article.path}", "text/html", "200", body))
    # Same URL captured twice in 2020: one distinct URL.
    first = server.captures[0]
    server.captures.append(("20201201000000", first[1], "text/html", "200", first[4]))
    for i, article in enumerate(blog.articles[:3]):
        ts = f"2024{i + 3:02d}01120000"
        body = article_html(article).encode()
        server.captures.append((ts, f"http://www.blog.example{article.path}", "text/html", "200", body))
    undated = _page("Undated", f"<article><p>{blog.articles[5].text}</p></article>")
    server.captures.append(("20240801000000", "http://blog.example/undated.html", "text/html", "200", undated.encode()))
    server.captures.append(("20240901000000", "http://blog.example/doc.pdf", "application/pdf", "200", b"%PDF-1.4"))
    server.captures.append(("20241001000000", "http://blog.example/gone.html", "text/html", "404", b"gone"))
    broken = "http://blog.example/always-busy.html"
    server.captures.append(("20241101000000", broken, "text/html", "200", b"<html></html>"))
    busy_once = server.captures[6]
    server.failures[f"/web/{busy_once[0]}id_/{busy_once[1]}"] = [429]
    server.failures[f"/web/20241101000000id_/{broken}"] = [503] * 10
    return {"busy_once": busy_once[1], "broken": broken}


def test_cdx_query_pick_and_retry(archive_server):
    fill(archive_server)
    client = PoliteClient(rate=200, retries=2, backoff=0.01, timeout=5, user_agent="synthweb-test")
    cdx = f"{archive_server.root}/cdx/search/cdx"
    captures = cdx_captures(client, cdx, "blog.example", 2024, limit=50)
    assert {c.original.rsplit("/", 1)[-1] for c in captures} >= {"undated.html", "always-busy.html"}
    assert not [c for c in captures if c.original.endswith((".pdf", "gone.html"))]  # filtered by the CDX query
    news = cdx_captures(client, cdx, "news.example", 2020, limit=50)
    assert len(news) == 5 and len(pick(news, 10)) == 4  # a URL captured twice counts once
    two = pick(news, 2)
    assert len({c.original for c in two}) == 2
    assert raw_capture_url("http://h/web", Capture("20200101000000", "http://a/b")) == (
        "http://h/web/20200101000000id_/http://a/b"
    )
    query = next(path for path, _ in archive_server.log if path.startswith("/cdx/"))
    assert "collapse=urlkey" in query and "statuscode%3A200" in query and "output=json" in query


@pytest.mark.slow
def test_wayback_backfill_stores_yearly_snapshots_and_reports_failures(tmp_path, archive_server):
    cases = fill(archive_server)
    domains = tmp_path / "domains.txt"
    domains.write_text("news.example\nblog.example\n# a comment\n")
    db = f"chdb:///{tmp_path}/store"
    args = ["wayback", "--quiet", "--domains", str(domains), "--from", "2020", "--to", "2024", "--per-year", "5"]
    args += ["--rate", "100", "--cdx-url", f"{archive_server.root}/cdx/search/cdx", "--db", db]
    env = {"SYNTHWEB_WAYBACK_BACKOFF": "0.01"}
    result = synthweb(*args, env=env)
    assert result.returncode == 1, result.stderr[-3000:]  # one capture could not be fetched
    summary = json.loads([line for line in result.stderr.splitlines() if line.startswith("{")][-1])
    assert [f["what"] for f in summary["failures"]] == [cases["broken"]]
    assert summary["failures"][0]["reason"] == "http_503" and "5 attempts" in summary["failures"][0]["detail"]
    assert f"could not fetch {cases['broken']}" in result.stderr
    # A rerun fetches only what is missing (the always-busy page: 1 try + 4 retries) and stores nothing twice.
    fetches = sum(1 for path, _ in archive_server.log if "id_/" in path)
    assert synthweb(*args, env=env).returncode == 1
    again = [path for path, _ in archive_server.log if "id_/" in path][fetches:]
    assert len(again) == 5 and all(cases["broken"] in p for p in again)
    pages, skips, dated = sql(
        db,
        "SELECT snapshot, count() AS n, uniqExact(url) AS urls FROM pages GROUP BY snapshot ORDER BY snapshot",
        "SELECT DISTINCT url, reason FROM skipped_pages",
        "SELECT url, date_source, toString(published) AS day, toString(fetched_at) AS t FROM pages "
        "WHERE snapshot = 'wayback-2024' ORDER BY url",
    )
    # Four distinct news URLs in 2020 (one captured twice); in 2024 five listed, one never fetched.
    assert pages == [{"snapshot": "wayback-2020", "n": 4, "urls": 4}, {"snapshot": "wayback-2024", "n": 4, "urls": 4}]
    assert skips == [{"url": cases["broken"], "reason": "http_503"}]
    by_url = {d["url"]: d for d in dated}
    assert by_url[cases["busy_once"]]["date_source"] == "metadata"  # the 429 was retried
    undated = by_url["http://blog.example/undated.html"]
    assert undated["date_source"] == "capture" and undated["day"] == "2024-08-01"
    assert undated["t"] == "2024-08-01 00:00:00.000"
