"""Fuzzing the extract stage (hypothesis, bounded and derandomized): any HTML gives a page or a recorded skip.

Found while writing it: nothing; no input made the stage raise or keep HTML.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.extract import ExtractStage
from synthweb.pipeline import Page

TAGS = ["<p>", "</p>", "<article>", "</article>", "<div>", "<script>", "</script>", "<!--", "-->", "<meta ",
        '<meta property="article:published_time" content="', '">', "<title>", "</title>", "&amp;", "&#0;",
        "<![CDATA[", "]]>", "<html>", "<body>", "\x00", "\ufffd", "<a href='", "'>", "<time datetime='"]  # fmt: skip
HTML = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=40), st.just("words and more words " * 10)),
                max_size=40).map("".join)  # fmt: skip
SKIPS = {"", "binary", "no_text", "too_large", "extract_error"}


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(html=HTML)
def test_any_html_gives_text_or_a_recorded_skip(html):
    [page] = list(ExtractStage().run([Page(url="https://example.com/x", html=html)]))
    assert page.html == "" and page.skip in SKIPS
    if not page.skip:
        assert page.text and page.word_count == len(page.text.split()) and page.content_hash
        assert page.domain == "example.com"
