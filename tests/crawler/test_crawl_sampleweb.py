"""End-to-end crawls of local sites with ExtractStage + CollectorStage, each in a subprocess."""

from collections import Counter
from urllib.parse import urlsplit

import pytest

from synthweb.sampleweb import (
    LATIN1_WORDS,
    UNDATED_LASTMOD,
    UNDATED_PATH,
    SampleWeb,
    Site,
    build_sites,
    load_texts,
)
from tests.support.crawl import crawl_in_subprocess

pytestmark = pytest.mark.slow

FAST = {
    "SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True,
    "DOWNLOAD_DELAY": 0.02,
    "AUTOTHROTTLE_START_DELAY": 0.02,
    "SYNTHWEB_MAX_QUERY_VARIANTS": 4,
    "SYNTHWEB_BATCH_SIZE": 7,  # several full batches plus the flush on close
}


def paths_requested(site, since=0):
    return [path for path, _ in site.requests[since:]]


@pytest.fixture(scope="module")
def crawl(sample_web):
    marks = {s.name: len(s.requests) for s in sample_web.sites}
    summary, pages = crawl_in_subprocess(sample_web.seeds, FAST)
    by_path = {}
    for page in pages:
        parts = urlsplit(page["url"])
        by_path[(parts.hostname, parts.path + (f"?{parts.query}" if parts.query else ""))] = page
    return summary, pages, by_path, marks


def page_at(by_path, site, path):
    return by_path[(site.address, path)]


def test_articles_extracted_with_dates(sample_web, crawl):
    summary, pages, by_path, _ = crawl
    assert summary["finish_reason"] == "finished"
    assert summary["pages_fetched"] > 60
    for site in sample_web.sites:
        for article in site.articles:
            page = page_at(by_path, site, article.path)
            assert not page["skip"], page
            assert page["published"] == article.published.isoformat()
            assert page["date_source"] == "metadata"
            assert page["lang"] == "en"
            assert page["domain"] == site.address and page["tld"] == ""
            # The extracted text is the article, not the navigation around it.
            assert " ".join(article.text.split()[-5:]).rstrip(".") in " ".join(page["text"].split())
            assert "Sample web for synthweb tests" not in page["text"]
    stored = [p for p in pages if not p["skip"]]
    assert summary["pages_stored"] == len(stored)
    assert summary["pages_stored"] + summary["pages_skipped"] == len(pages) == summary["pages_yielded"]
    assert all(p["html"] == "" for p in pages)


def test_sitemap_discovered_and_lastmod_dates_undated_pages(sample_web, crawl):
    _, _, by_path, marks = crawl
    news = sample_web.site("news")
    # Only the sitemap links the undated page; its <lastmod> becomes its date.
    undated = page_at(by_path, news, UNDATED_PATH)
    assert not undated["skip"] and undated["date_source"] == "sitemap"
    assert undated["published"] == UNDATED_LASTMOD.isoformat()
    # Articles carry their own date, which wins over the sitemap's.
    article = news.articles[3]
    assert page_at(by_path, news, article.path)["date_source"] == "metadata"
    requested = paths_requested(news, marks["news"])
    assert requested.index("/sitemaps/articles.xml") < requested.index("/")  # sitemaps before the seed
    blog = paths_requested(sample_web.site("blog"), marks["blog"])
    assert "/sitemap.xml" in blog  # no Sitemap: line in robots.txt: the conventional place is tried


def test_robots_private_never_fetched(sample_web, crawl):
    _, pages, _, marks = crawl
    for site in sample_web.sites:
        requested = paths_requested(site, marks[site.name])
        # Once per site: sitemap discovery's fetch is the robots middleware's rules too (RFC 9309 caching).
        assert requested.count("/robots.txt") == 1
        assert not [p for p in requested if p.startswith("/private/")]
    assert not [p for p in pages if "/private/" in p["url"] or p["url"].endswith("/robots.txt")]


def test_traps_bounded(sample_web, crawl):
    _, pages, _, marks = crawl
    news, blog = sample_web.site("news"), sample_web.site("blog")
    calendar = [p for p in paths_requested(news, marks["news"]) if p.startswith("/calendar")]
    assert len(calendar) == FAST["SYNTHWEB_MAX_QUERY_VARIANTS"]
    repeats = [p for p in paths_requested(blog, marks["blog"]) if p.startswith("/a/")]
    assert sorted(repeats) == ["/a/", "/a/a/"]


def test_bad_inputs_skipped(sample_web, crawl):
    summary, _, by_path, _ = crawl
    mixed, blog = sample_web.site("mixed"), sample_web.site("blog")
    assert page_at(by_path, mixed, "/big.html")["skip"] == "too_large"
    assert page_at(by_path, mixed, "/loop-a")["skip"] == "redirect_loop"
    assert page_at(by_path, mixed, "/missing.html")["skip"] == "http_404"
    assert page_at(by_path, mixed, "/data.json")["skip"] == "not_html"
    assert page_at(by_path, blog, "/report.html")["skip"] == "binary"
    short = page_at(by_path, blog, "/short.html")
    assert not short["skip"] and short["word_count"] < 50
    for reason in ("too_large", "redirect_loop", "http_404", "not_html", "binary"):
        assert summary["skipped"].get(reason) == 1, summary


def test_latin1_decoded_and_duplicates_hash_equal(sample_web, crawl):
    _, _, by_path, _ = crawl
    news = sample_web.site("news")
    latin1 = page_at(by_path, news, "/latin1.html")
    for word in LATIN1_WORDS:
        assert word in latin1["text"]
    [dup] = news.duplicate_of.items()
    assert page_at(by_path, news, dup[0])["content_hash"] == page_at(by_path, news, dup[1])["content_hash"]


def test_expected_counts_match_sites(sample_web):
    news, blog, mixed = (sample_web.site(n) for n in ("news", "blog", "mixed"))
    assert (news.human, news.machine) == (20, 0)
    assert (blog.human, blog.machine) == (0, 20)
    assert (mixed.human, mixed.machine) == (10, 10)
    assert len(load_texts()) == 60


def test_budget_and_private_network_guard(sample_web):
    # Budget: at most 5 pages per site.
    summary, pages = crawl_in_subprocess(sample_web.seeds, {**FAST, "SYNTHWEB_MAX_PAGES_PER_SITE": 5})
    per_site = Counter(urlsplit(p["url"]).hostname for p in pages)
    assert per_site == {s.address: 5 for s in sample_web.sites}, per_site

    # Without SYNTHWEB_ALLOW_PRIVATE_NETWORKS every 127.0.0.x seed (and a name resolving
    # to loopback) is refused before anything, robots.txt included, is fetched.
    marks = [len(s.requests) for s in sample_web.sites]
    port = sample_web.sites[0].port
    seeds = [*sample_web.seeds, f"http://localhost:{port}/"]
    summary, pages = crawl_in_subprocess(seeds, {**FAST, "SYNTHWEB_ALLOW_PRIVATE_NETWORKS": False})
    assert sorted(p["url"] for p in pages) == sorted(seeds)
    assert {p["skip"] for p in pages} == {"private_network"}
    assert all("non-public address" in p["skip_detail"] for p in pages)
    assert [len(s.requests) for s in sample_web.sites] == marks


def test_crawl_delay_honoured():
    texts = build_sites()[0].articles[:3]
    slow = Site("slow", "127.0.0.20", crawl_delay=1.0, articles=texts)
    fast = Site("fast", "127.0.0.21", articles=texts)
    with SampleWeb([slow, fast]) as web:
        # AutoThrottle stays on (the default): it must not lower the delay below Crawl-delay.
        summary, pages = crawl_in_subprocess(web.seeds, {**FAST, "DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_START_DELAY": 0})
    assert len(pages) == 8 and not [p for p in pages if p["skip"] and not p["url"].endswith("/")]

    def page_times(site):
        return sorted(t for path, t in site.requests if path not in ("/robots.txt", "/sitemap.xml"))

    slow_times, fast_times = page_times(slow), page_times(fast)
    assert len(slow_times) == len(fast_times) == 4
    gaps = [b - a for a, b in zip(slow_times, slow_times[1:], strict=False)]
    assert min(gaps) >= 0.9, gaps
    assert slow_times[-1] - slow_times[0] >= 2.9
    assert fast_times[-1] - fast_times[0] < 1.0
