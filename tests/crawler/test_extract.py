"""ExtractStage: text, title, date (and its source), language, site keys, hash, skips."""

from datetime import UTC, date, datetime, timedelta

import pytest

from crawler.extract import ExtractStage, content_hash, looks_binary, site_keys
from synthweb.pipeline import Page

BODY = " ".join(
    f"<p>The committee met on a rainy afternoon to discuss item {i} of the budget, "
    "and several members argued that the library should stay open longer.</p>"
    for i in range(6)
)


def html(body=BODY, head=""):
    return (
        f"<html><head><title>Budget talks</title>{head}</head><body><nav><a href='/'>Home</a></nav>"
        f"<article><h1>Budget talks</h1>{body}</article></body></html>"
    )


def run(*pages):
    return list(ExtractStage().run(pages))


def test_text_title_lang_and_counts():
    [page] = run(Page(url="https://www.example.co.uk/x", html=html()))
    assert not page.skip
    assert "library should stay open longer" in page.text
    assert "Home" not in page.text.split("\n")  # navigation is boilerplate
    assert page.title == "Budget talks"
    assert page.lang == "en"
    assert page.word_count == len(page.text.split()) > 50
    assert page.html == ""  # never stored


def test_language_german():
    text = " ".join(
        "<p>Die Bibliothek der Stadt bleibt in diesem Sommer länger geöffnet, weil viele Schüler "
        "dort lernen wollen und der Gemeinderat das Geld dafür bewilligt hat.</p>"
        for _ in range(5)
    )
    [page] = run(Page(url="https://example.de/a", html=html(text)))
    assert page.lang == "de"


@pytest.mark.parametrize(
    "url,host,domain,tld",
    [
        ("https://news.bbc.co.uk/a", "news.bbc.co.uk", "bbc.co.uk", "co.uk"),
        ("http://a.b.example.com:8080/", "a.b.example.com", "example.com", "com"),
        ("http://127.0.0.2:5000/x", "127.0.0.2", "127.0.0.2", ""),
        ("http://[2001:db8::1]/x", "2001:db8::1", "2001:db8::1", ""),
        ("http://localhost:8000/", "localhost", "localhost", ""),
    ],
)
def test_site_keys(url, host, domain, tld):
    assert site_keys(url) == (host, domain, tld)


def test_date_from_metadata():
    head = '<meta property="article:published_time" content="2020-03-04T10:00:00Z">'
    [page] = run(Page(url="https://example.com/a", html=html(head=head)))
    assert (page.published, page.date_source) == (date(2020, 3, 4), "metadata")


def test_date_from_url_only():
    [page] = run(Page(url="https://example.com/2018/07/09/budget.html", html=html()))
    assert (page.published, page.date_source) == (date(2018, 7, 9), "url")


def test_date_from_content_only():
    body = "<p>Posted on 12 May 2017.</p>" + BODY
    [page] = run(Page(url="https://example.com/a", html=html(body)))
    assert (page.published, page.date_source) == (date(2017, 5, 12), "content")


def test_no_date_and_future_date_rejected():
    future = (datetime.now(UTC).date() + timedelta(days=400)).isoformat()
    head = f'<meta property="article:published_time" content="{future}">'
    pages = run(Page(url="https://example.com/a", html=html()), Page(url="https://example.com/b", html=html(head=head)))
    for page in pages:
        assert page.published is None and page.date_source == ""


def test_content_hash_equal_for_exact_duplicates():
    a, b, c = run(
        Page(url="https://example.com/a", html=html()),
        Page(url="https://example.com/print/a", html=html().replace("</p> <p>", "</p>\n\n   <p>")),
        Page(url="https://example.com/c", html=html(BODY.replace("rainy", "sunny"))),
    )
    assert a.content_hash == b.content_hash != c.content_hash
    assert content_hash("Hello   World\n") == content_hash("hello world")
    assert len(a.content_hash) == 40 and int(a.content_hash, 16) >= 0


def test_skips():
    skipped = Page(url="https://example.com/s", html=html(), skip="too_large")
    binary = Page(url="https://example.com/b", html="\x00\x01\x02\x03 PNG junk \x00" * 50)
    empty = Page(url="https://example.com/e", html="<html><body><nav><a href='/'>x</a></nav></body></html>")
    blank = Page(url="https://example.com/z", html="")
    out = run(skipped, binary, empty, blank)
    assert [p.skip for p in out] == ["too_large", "binary", "no_text", "no_text"]
    assert out[0].text == "" and all(p.html == "" for p in out)


def test_looks_binary():
    assert looks_binary(b"abc\x00def")
    assert looks_binary(bytes(range(1, 32)) * 10)
    assert not looks_binary("café naïve déjà vu\n\t".encode())
    assert not looks_binary("<html>Grüße</html>")
    assert looks_binary("\ufffd\ufffd\ufffdab")


def test_text_only_page_keeps_its_text_and_gets_keys():
    # A WET conversion record: text, no HTML. No extraction, but language, keys, hash and words.
    text = "The committee met on a rainy afternoon to discuss the budget of the library. " * 8
    [page] = run(Page(url="https://news.example.org/a", text=text, content_type="text/plain"))
    assert not page.skip and page.text == text.strip()
    assert page.lang == "en" and page.word_count == len(text.split()) and page.content_hash == content_hash(text)
    assert (page.host, page.domain, page.tld) == ("news.example.org", "example.org", "org")
    assert page.published is None and page.date_source == ""


def test_preset_date_is_a_fallback_the_page_date_wins():
    lastmod = date(2020, 5, 5)
    [undated] = run(Page(url="https://example.org/a", html=html(), published=lastmod, date_source="sitemap"))
    assert (undated.published, undated.date_source) == (lastmod, "sitemap")
    head = '<meta property="article:published_time" content="2018-03-04T10:00:00Z">'
    [dated] = run(Page(url="https://example.org/b", html=html(head=head), published=lastmod, date_source="capture"))
    assert (dated.published, dated.date_source) == (date(2018, 3, 4), "metadata")


def test_html_over_the_extraction_limit_is_recorded_not_extracted():
    big = html(BODY + "<p>" + "filler " * 2000 + "</p>")
    [page] = list(ExtractStage(max_chars=len(big) - 1).run([Page(url="https://example.com/big", html=big)]))
    assert page.skip == "too_large" and str(len(big)) in page.skip_detail and page.html == "" and not page.text
    [page] = list(ExtractStage(max_chars=len(big)).run([Page(url="https://example.com/big", html=big)]))
    assert not page.skip and page.word_count > 2000


def test_the_extraction_limit_is_a_setting():
    from scrapy.settings import Settings

    assert ExtractStage.from_settings(Settings({"SYNTHWEB_MAX_EXTRACT_CHARS": 1234})).max_chars == 1234
