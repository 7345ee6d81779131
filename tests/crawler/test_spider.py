"""SiteSpider callbacks without a reactor: decoding, skip reasons, same-site links, budget."""

import pytest
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse, Request, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from crawler.middlewares import PrivateNetworkRefused
from crawler.spiders.site import SiteSpider, decode_html, first_links, site_of
from synthweb.pipeline import Page

ROOT = "http://www.example.com/"


@pytest.fixture
def spider():
    crawler = get_crawler(SiteSpider, {"SYNTHWEB_MAX_PAGES_PER_SITE": 3, "DEPTH_LIMIT": 8})
    return SiteSpider.from_crawler(crawler, seeds=f"{ROOT},http://127.0.0.9:8000/")


def html_response(url, body, ctype="text/html; charset=utf-8", cls=HtmlResponse):
    request = Request(url, meta={"site": site_of(url), "depth": 0})
    return cls(url, body=body, headers={"Content-Type": ctype}, request=request)


def test_seeds_and_site_of(spider):
    assert spider.seeds == [ROOT, "http://127.0.0.9:8000/"]
    assert site_of("http://blog.example.com/x") == "example.com"
    assert site_of("http://127.0.0.9:8000/x") == "127.0.0.9"


def test_parse_yields_page_and_same_site_links_within_budget(spider):
    links = "".join(
        f'<a href="{u}">x</a>'
        for u in ["/a", "http://blog.example.com/b", "http://other.org/c", "/d", "/e", "/a", "/logo.png"]
    )
    out = list(spider.parse(html_response(ROOT, f"<html><body>{links}</body></html>".encode())))
    page, *requests = out
    assert isinstance(page, Page) and page.html.startswith("<html>") and page.status == 200
    assert page.content_type == "text/html" and page.fetched_at.tzinfo is not None
    # Budget 3: only three requests for example.com; other.org and .png never.
    assert [r.url for r in requests] == [
        "http://www.example.com/a",
        "http://blog.example.com/b",
        "http://www.example.com/d",
    ]
    assert all(r.dont_filter and r.errback == spider.on_error for r in requests)


def test_parse_skips_non_html_and_binary(spider):
    [page] = spider.parse(html_response(ROOT + "x.json", b"{}", "application/json", TextResponse))
    assert page.skip == "not_html" and page.html == ""
    [page] = spider.parse(html_response(ROOT + "r.html", b"\x00\x01\x02junk" * 100))
    assert page.skip == "binary"


def test_decode_html_undeclared_latin1_and_declared():
    text = "Un café, une question naïve et un peu de déjà vu ce matin au marché."
    body = f"<html><body><p>{text}</p></body></html>"
    latin = html_response(ROOT, body.encode("latin-1"), "text/html")
    assert text in decode_html(latin)
    utf8 = html_response(ROOT, body.encode("utf-8"), "text/html")
    assert text in decode_html(utf8)
    polish = "Zażółć gęślą jaźń. Wszystkie łąki są zielone, a źrebięta biegają po polach. " * 3
    assert polish.strip() in decode_html(html_response(ROOT, polish.encode("cp1250"), "text/html"))
    russian = "Сегодня хорошая погода, и мы пойдём гулять в парк. " * 3
    declared = html_response(ROOT, russian.encode("cp1251"), "text/html; charset=windows-1251")
    assert russian.strip() in decode_html(declared)
    undeclared = html_response(ROOT, russian.encode("cp1251"), "text/html")
    assert russian.strip() in decode_html(undeclared)


def _fail(exc, url=ROOT + "p"):
    failure = Failure(exc)
    failure.request = Request(url, meta={"site": site_of(url)})
    return failure


def test_errback_reasons(spider):
    not_found = Response(ROOT + "p", status=404, request=Request(ROOT + "p"))
    cases = {
        "private_network": PrivateNetworkRefused("refused x"),
        "http_404": HttpError(not_found, "Ignoring non-200 response"),
        "redirect_loop": IgnoreRequest("max redirections reached"),
        "fetch_error": ConnectionRefusedError("refused"),
    }
    for reason, exc in cases.items():
        [page] = spider.on_error(_fail(exc))
        assert page.skip == reason and page.url == ROOT + "p" and page.skip_detail
    spider.scheduled["example.com"] = 2
    assert list(spider.on_error(_fail(IgnoreRequest("Forbidden by robots.txt")))) == []
    assert spider.scheduled["example.com"] == 1  # budget handed back


def test_a_compression_bomb_is_recorded_too_large(spider):
    """Scrapy inflates a gzip body only up to DOWNLOAD_MAXSIZE and ignores the response: a skip, not silence."""
    import gzip

    from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware

    crawler = get_crawler(SiteSpider, {"DOWNLOAD_MAXSIZE": 1024 * 1024})
    middleware = HttpCompressionMiddleware.from_crawler(crawler)
    request = Request(ROOT + "bomb", meta={"site": site_of(ROOT)})
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))  # 8 MB of zeros in ~8 kB
    response = Response(ROOT + "bomb", body=bomb, headers={"Content-Encoding": "gzip"}, request=request)
    with pytest.raises(IgnoreRequest) as ignored:
        middleware.process_response(request, response)
    [page] = spider.on_error(_fail(ignored.value, ROOT + "bomb"))
    assert page.skip == "too_large" and "DOWNLOAD_MAXSIZE" in page.skip_detail


def test_a_link_farm_is_followed_for_its_first_links_only():
    crawler = get_crawler(SiteSpider, {"SYNTHWEB_MAX_PAGES_PER_SITE": 100, "SYNTHWEB_MAX_LINKS_PER_PAGE": 5})
    spider = SiteSpider.from_crawler(crawler, seeds=ROOT)
    links = "".join(f'<a href="/p{i}">link {i}</a> <A\nhref="/q{i}">other</A>' for i in range(50))
    page, *requests = list(spider.parse(html_response(ROOT, f"<html><body>{links}</body></html>".encode())))
    assert [r.url for r in requests] == [ROOT + p for p in ("p0", "q0", "p1", "q1", "p2")]
    assert "/p49" in page.html  # the page itself is kept whole for extraction
    assert spider.crawler.stats.get_value("synthweb/links_capped") == 1


def test_first_links_keeps_a_page_under_the_cap_and_a_zero_cap_means_all():
    response = html_response(ROOT, b"<html><body>" + b'<a href="/x">x</a>' * 3 + b"</body></html>")
    assert first_links(response, 3) == (response, False)
    assert first_links(response, 0) == (response, False)
    cut, capped = first_links(response, 2)
    assert capped and cut.body.count(b"<a ") == 2
