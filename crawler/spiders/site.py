"""SiteSpider: crawl each seed's site, yielding one `Page` per fetched or refused URL."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import UTC, datetime

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse
from scrapy.linkextractors import LinkExtractor
from scrapy.spidermiddlewares.httperror import HttpError
from w3lib.url import canonicalize_url

from crawler.extract import looks_binary, site_keys
from crawler.middlewares import OffsiteRedirectRefused, PrivateNetworkRefused
from crawler.sitemaps import SitemapDiscoveryMixin
from crawler.traps import TrapGuard
from synthweb.pipeline import Page

HTML_TYPES = ("text/html", "application/xhtml+xml")


def site_of(url: str) -> str:
    """The crawl unit of a URL: its registered domain, or the IP for IP hosts."""
    return site_keys(url)[1]


def _non_ascii_letter_share(text: str) -> float:
    chars = [c for c in text if ord(c) > 127]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 1.0


def _latin_script(text: str) -> bool:
    return all(unicodedata.name(c, "").startswith("LATIN") for c in text if ord(c) > 127 and c.isalpha())


def decode_html(response) -> str:
    """The response body as text, with a better guess for undeclared legacy charsets.

    Declared charsets (header, BOM, <meta>) and valid UTF-8 decode as Scrapy does.
    For the rest Scrapy 2.19 takes charset_normalizer's guess, which reads a short
    Latin-1 page as Baltic cp1257 ("naļve"). When the guess is a Latin-script
    encoding and windows-1252 turns the non-ASCII bytes into letters at least as
    often, windows-1252 wins, as in browsers (WHATWG); Polish cp1250 or Cyrillic
    cp1251 pages keep their guess.
    """
    from charset_normalizer import from_bytes
    from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom

    body = response.body
    content_type = response.headers.get(b"Content-Type", b"").decode("latin-1")
    if http_content_type_encoding(content_type) or read_bom(body)[0] or html_body_declared_encoding(body):
        return response.text
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    western = body.decode("cp1252", errors="replace")
    best = from_bytes(body[:65536]).best()
    if best is None:
        return western
    try:
        guess = body.decode(best.encoding, errors="replace")
    except LookupError:
        return western
    if _latin_script(guess) and _non_ascii_letter_share(western) >= _non_ascii_letter_share(guess):
        return western
    return guess


def _too_large(exc: BaseException) -> bool:
    # DOWNLOAD_MAXSIZE cancels the download: DownloadCancelledError when the
    # Content-Length is over the limit, CancelledError when the body grows past it.
    name = type(exc).__name__
    inflated = type(exc.__cause__).__name__ == "_DecompressionMaxSizeExceeded"  # Scrapy's HttpCompression
    return inflated or name in ("DownloadCancelledError", "CancelledError") or "maxsize" in str(exc).lower()


_ANCHOR = re.compile(rb"<a[\s>]", re.IGNORECASE)


def first_links(response, limit: int):
    """(response, capped): the response cut before its (limit + 1)-th <a> tag, so link extraction parses at most
    `limit` anchors (a page of 200,000 links cost 220 MB and 9 s to extract them all); capped says whether it
    was cut. A limit of 0 keeps every link."""
    if limit <= 0:
        return response, False
    for count, match in enumerate(_ANCHOR.finditer(response.body), 1):
        if count > limit:
            return response.replace(body=response.body[: match.start()]), True
    return response, False


class SiteSpider(SitemapDiscoveryMixin, scrapy.Spider):
    """Crawl the sites of `seeds` (a list or a comma-separated string).

    Stays on each seed's registered domain (or IP), follows HTML links breadth-first,
    stops scheduling a site once `max_pages_per_site` requests are out, and refuses
    trap URLs (see `TrapGuard`). Deduplication is done here rather than by Scrapy's
    dupefilter so redirected requests are not filtered: a redirect loop then runs
    into REDIRECT_MAX_TIMES and is recorded as skipped instead of vanishing.
    With SYNTHWEB_SITEMAPS each site's sitemaps are read before its seeds (see crawler.sitemaps).
    """

    name = "site"

    @classmethod
    def update_settings(cls, settings) -> None:
        super().update_settings(settings)
        # `scrapy crawl` builds settings from the module alone; the SYNTHWEB_* environment overrides go in here,
        # before any component reads them (a Scrapy add-on would run only after the spider is built).
        from synthweb.config import apply_environment

        apply_environment(settings)

    def __init__(self, seeds=None, max_pages_per_site=None, snapshot=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(seeds, str):
            seeds = [s.strip() for s in seeds.split(",")]
        self.seeds: list[str] = [s for s in (seeds or []) if s]
        self._max_pages_arg = max_pages_per_site
        self._snapshot_arg = snapshot
        self.scheduled: Counter[str] = Counter()  # requests out per site (the budget)
        self.yielded: Counter[str] = Counter()  # pages yielded per site
        self._seen: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.max_pages_per_site = int(spider._max_pages_arg or settings.getint("SYNTHWEB_MAX_PAGES_PER_SITE", 200))
        spider.snapshot = (
            spider._snapshot_arg or settings.get("SYNTHWEB_SNAPSHOT") or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        )
        spider.depth_limit = settings.getint("DEPTH_LIMIT", 0)
        spider.traps = TrapGuard.from_settings(settings)
        spider.link_extractor = LinkExtractor()
        spider.max_links = settings.getint("SYNTHWEB_MAX_LINKS_PER_PAGE", 2000)
        spider._init_sitemaps(settings)
        return spider

    async def start(self):
        for url in self.seeds:
            if self.sitemaps_enabled:
                for request in self._discover(url, site_of(url)):
                    yield request
                continue
            request = self._request(url, site_of(url), depth=0)
            if request is not None:
                yield request

    # --- scheduling ---------------------------------------------------------
    def _request(self, url: str, site: str, depth: int, reset: bool = False) -> scrapy.Request | None:
        key = canonicalize_url(url)
        if key in self._seen:
            return None
        if self.scheduled[site] >= self.max_pages_per_site:
            self.crawler.stats.inc_value("synthweb/budget_refused")
            return None
        reason = self.traps.refuse_reason(url)
        if reason:
            self.crawler.stats.inc_value(f"synthweb/trap_refused/{reason}")
            return None
        self._seen.add(key)
        self.scheduled[site] += 1
        return scrapy.Request(
            url,
            callback=self.parse,
            errback=self.on_error,
            dont_filter=True,  # see the class docstring
            meta={"site": site, "depth": depth, **({"depth_reset": True} if reset else {})},
        )

    def _follow(self, response, site: str):
        depth = response.meta.get("depth", 0) + 1
        if self.depth_limit and depth > self.depth_limit:
            return
        response, capped = first_links(response, self.max_links)
        if capped:  # a link farm: parse and follow its first links only (recorded in the crawl summary)
            self.crawler.stats.inc_value("synthweb/links_capped")
        for link in self.link_extractor.extract_links(response):
            if link.nofollow or site_of(link.url) != site:
                continue
            request = self._request(link.url, site, depth)
            if request is not None:
                yield request

    # --- pages --------------------------------------------------------------
    def _page(self, url: str, site: str, **fields) -> Page:
        self.yielded[site] += 1
        return Page(url=url, snapshot=self.snapshot, fetched_at=datetime.now(UTC), **fields)

    def parse(self, response):
        site = response.meta.get("site") or site_of(response.url)
        header = response.headers.get(b"Content-Type", b"").decode("latin-1")
        mime = header.split(";", 1)[0].strip().lower()
        common = {"status": response.status, "content_type": mime}
        if site_of(response.url) != site:
            yield self._page(response.url, site, skip="offsite_redirect", **common)
            return
        if mime not in HTML_TYPES and not (not mime and isinstance(response, HtmlResponse)):
            yield self._page(response.url, site, skip="not_html", **common)
            return
        if looks_binary(response.body):
            yield self._page(response.url, site, skip="binary", **common)
            return
        try:
            html = decode_html(response)
        except (AttributeError, UnicodeDecodeError) as exc:
            yield self._page(response.url, site, skip="binary", skip_detail=str(exc)[:500], **common)
            return
        lastmod = self.sitemap_date(response.url, *response.meta.get("redirect_urls", ()))
        dated = {"published": lastmod, "date_source": "sitemap"} if lastmod else {}
        yield self._page(response.url, site, html=html, **common, **dated)
        yield from self._follow(response, site)

    def on_error(self, failure):
        request = failure.request
        site = request.meta.get("site") or site_of(request.url)
        url = (request.meta.get("redirect_urls") or [request.url])[0]
        exc = failure.value
        status = 0
        if isinstance(exc, PrivateNetworkRefused):
            reason = "private_network"
        elif isinstance(exc, OffsiteRedirectRefused):
            reason = "offsite_redirect"
        elif isinstance(exc, HttpError):
            status = exc.response.status
            reason = f"http_{status}"
        elif _too_large(exc):  # also a compressed body over DOWNLOAD_MAXSIZE once inflated (an IgnoreRequest)
            reason = "too_large"
        elif isinstance(exc, IgnoreRequest):
            if "redirect" not in str(exc):
                # Forbidden by robots.txt (or filtered): not fetched, no page, budget back.
                self.scheduled[site] -= 1
                return
            reason = "redirect_loop"
        else:
            reason = "fetch_error"
        yield self._page(url, site, status=status, skip=reason, skip_detail=f"{type(exc).__name__}: {exc}"[:500])
