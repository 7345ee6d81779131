"""Extract stage: main text, title, date, language and site keys from fetched HTML.

Everything here is offline: trafilatura and htmldate work on the HTML we already
have, tldextract uses only its bundled public-suffix snapshot, py3langid its model.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from functools import lru_cache
from urllib.parse import urlsplit

from crawler.language import detect_language
from synthweb.pipeline import Page, Stage

log = logging.getLogger(__name__)

# A page whose first bytes are more than this share control characters is not text.
_CONTROL_SHARE = 0.10
_SNIFF_CHARS = 4096
# Control characters other than \t \n \v \f \r (and DEL); for text also C1 controls and U+FFFD.
_BAD_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_BAD_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


def looks_binary(data: str | bytes) -> bool:
    """True for content that is not text: NUL bytes or mostly control characters.

    Works on raw bytes (the spider) and on decoded text (the stage); U+FFFD
    replacement characters count as control characters since they mark bytes
    that did not decode.
    """
    if not data:
        return False
    sample = data[:_SNIFF_CHARS]
    if isinstance(sample, bytes):
        if b"\x00" in sample:
            return True
        bad = len(_BAD_BYTES.findall(sample))
    else:
        if "\x00" in sample:
            return True
        bad = len(_BAD_CHARS.findall(sample))
    return bad / len(sample) > _CONTROL_SHARE


def normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def content_hash(text: str) -> str:
    """Hex blake2b of the whitespace-normalised, lowercased text (exact duplicates match)."""
    return hashlib.blake2b(normalise_text(text).encode("utf-8"), digest_size=20).hexdigest()


@lru_cache(maxsize=1)
def _tld_extractor():
    import tldextract

    # No suffix-list URLs and no cache dir: only the snapshot bundled with the package,
    # so extraction never touches the network or the disk.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def site_keys(url: str) -> tuple[str, str, str]:
    """(host, registered domain, public suffix) of a URL; IP hosts are their own domain."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host, host, ""
    except ValueError:
        pass
    ext = _tld_extractor()(host)
    if not ext.suffix:  # "localhost", intranet names: no public suffix
        return host, ext.domain or host, ""
    return host, f"{ext.domain}.{ext.suffix}" if ext.domain else ext.suffix, ext.suffix


def main_text(tree, url: str, favor_precision: bool = True) -> str:
    """The page's main text by trafilatura ("" when it finds none); prunes `tree` in place, so call it last."""
    from trafilatura import bare_extraction

    doc = bare_extraction(
        tree,
        url=url,
        fast=True,
        favor_precision=favor_precision,
        include_comments=False,
        include_tables=False,
        with_metadata=False,
    )
    return (getattr(doc, "text", None) or "").strip()


def find_published(tree, url: str, today: date | None = None) -> tuple[date | None, str]:
    """Publication date and where it came from: "metadata", "url", "content" or ""."""
    from htmldate import find_date

    today = today or datetime.now(UTC).date()
    max_date = today.isoformat()
    attempts = (
        ("metadata", lambda: find_date(tree, extensive_search=False, original_date=True, max_date=max_date)),
        # An empty document so only the URL can supply the date.
        ("url", lambda: find_date("<html><body></body></html>", extensive_search=False, url=url, max_date=max_date)),
        ("content", lambda: find_date(tree, extensive_search=True, original_date=True, max_date=max_date)),
    )
    for source, attempt in attempts:
        try:
            found = attempt()
        except Exception:  # htmldate is robust but the web is not
            log.debug("date extraction failed for %s", url, exc_info=True)
            found = None
        if not found:
            continue
        try:
            day = date.fromisoformat(found)
        except ValueError:
            continue
        if day <= today:  # future dates are typos or event dates, never publication dates
            return day, source
    return None, ""


class ExtractStage(Stage):
    """Fill text, title, published, lang, host/domain/tld, content_hash, word_count.

    Pages without extractable text get skip "no_text", binary ones "binary";
    `html` is cleared in every case so it is never stored. A page that arrives with
    text and no HTML (a WET conversion record) keeps its text and only gets the keys.
    A date set before extraction (sitemap lastmod, capture time) is a fallback: a date
    the page itself carries wins.
    """

    name = "extract"
    requires = ("trafilatura", "htmldate", "tldextract", "py3langid")

    def __init__(self, favor_precision: bool = True, max_chars: int = 3_000_000):
        self.favor_precision = favor_precision
        self.max_chars = max_chars
        # trafilatura warns once per textless page; those are recorded as skip "no_text".
        logging.getLogger("trafilatura").setLevel(logging.ERROR)

    @classmethod
    def from_settings(cls, settings) -> ExtractStage:
        return cls(max_chars=settings.getint("SYNTHWEB_MAX_EXTRACT_CHARS", 3_000_000))

    def run(self, pages: Iterable[Page]) -> Iterator[Page]:
        for page in pages:
            if not page.skip:
                try:
                    self.extract(page)
                except Exception as exc:  # one odd page must not sink the batch
                    log.warning("extraction failed for %s: %s", page.url, exc)
                    page.skip, page.skip_detail = "extract_error", str(exc)[:500]
            page.html = ""
            yield page

    def extract(self, page: Page) -> Page:
        from trafilatura.metadata import extract_title
        from trafilatura.utils import load_html

        page.host, page.domain, page.tld = site_keys(page.url)
        if not page.html and page.text.strip():
            return self._describe(page, page.text.strip())
        html = page.html
        if looks_binary(html):
            page.skip = "binary"
            return page
        if self.max_chars and len(html) > self.max_chars:  # bounded work per page: memory and time
            page.skip = "too_large"
            page.skip_detail = f"{len(html)} characters of HTML, over SYNTHWEB_MAX_EXTRACT_CHARS={self.max_chars}"
            return page
        tree = load_html(html) if html.strip() else None
        if tree is None:
            page.skip = "no_text"
            return page
        page.title = (extract_title(tree) or "").strip()
        published, source = find_published(tree, page.url)
        if published is not None or page.published is None:
            page.published, page.date_source = published, source
        text = main_text(tree, page.url, self.favor_precision)  # prunes the tree, so it runs last
        if not text:
            page.skip = "no_text"
            return page
        return self._describe(page, text)

    @staticmethod
    def _describe(page: Page, text: str) -> Page:
        """Set the text and what is derived from it alone: word count, hash, language."""
        page.text = text
        page.word_count = len(text.split())
        page.content_hash = content_hash(text)
        page.lang = detect_language(text)
        return page
