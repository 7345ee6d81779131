"""Sitemap parsing: robots.txt lines, urlset and index, gzip, lastmod formats, bad input."""

import gzip
from datetime import date

from crawler.sitemaps import parse_lastmod, parse_sitemap, robots_sitemaps

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>http://a.example/x</loc><lastmod>2021-03-04T10:00:00+01:00</lastmod></url>
  <url><loc> http://a.example/y </loc></url>
  <url><loc>http://a.example/z</loc><lastmod>2999-01-01</lastmod></url>
</urlset>"""


def test_robots_sitemap_lines():
    text = "User-agent: *\nDisallow: /p/\nSitemap: http://a.example/s1.xml\nsitemap:http://a.example/s2.xml.gz\n"
    assert robots_sitemaps(text + "SITEMAP: http://a.example/s1.xml\n") == [
        "http://a.example/s1.xml",
        "http://a.example/s2.xml.gz",
    ]
    assert robots_sitemaps("User-agent: *\nDisallow:\n") == []


def test_parse_lastmod_formats():
    assert parse_lastmod("2021-03-04T10:00:00+01:00") == date(2021, 3, 4)
    assert parse_lastmod("2021-03") == date(2021, 3, 1) and parse_lastmod("2021") == date(2021, 1, 1)
    assert parse_lastmod("2021-02-30") is None and parse_lastmod("yesterday") is None and parse_lastmod(None) is None
    assert parse_lastmod("2999-01-01") is None  # a future date is never a publication date


def test_parse_urlset_index_and_gzip():
    kind, entries = parse_sitemap(URLSET, 10_000_000)
    assert kind == "urlset"
    assert entries == [
        ("http://a.example/x", date(2021, 3, 4)),
        ("http://a.example/y", None),
        ("http://a.example/z", None),
    ]
    assert parse_sitemap(gzip.compress(URLSET), 10_000_000) == (kind, entries)
    index = (
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>http://a.example/s.xml</loc></sitemap></sitemapindex>"
    )
    assert parse_sitemap(index, 10_000_000) == ("sitemapindex", [("http://a.example/s.xml", None)])
    assert parse_sitemap(b"<html>not a sitemap", 10_000_000)[1] == []
    assert parse_sitemap(b"\x1f\x8bbroken gzip", 10_000_000) == ("", [])
