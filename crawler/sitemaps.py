"""Sitemap discovery for the site spider: robots.txt `Sitemap:` lines, else /sitemap.xml.

Before a site's seeds are requested, its sitemaps are read (indexes followed up to
SYNTHWEB_MAX_SITEMAPS_PER_SITE files); every same-site `<loc>` becomes an entry point and
its `<lastmod>` the page's date when the page itself carries none (date_source "sitemap",
applied by ExtractStage, which lets a date found in the page win). Any failure (no
robots.txt, no sitemap, a broken one) only means the site is crawled from its seeds.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import scrapy
from w3lib.url import canonicalize_url

from crawler.extract import site_keys
from crawler.middlewares import PrivateNetworkRefused, robots_middleware

log = logging.getLogger(__name__)

_SITEMAP_LINE = re.compile(r"^\s*sitemap\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_W3C_DATE = re.compile(r"^\s*(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def robots_sitemaps(text: str) -> list[str]:
    """The URLs of the `Sitemap:` lines of a robots.txt, in order, without repeats."""
    return list(dict.fromkeys(_SITEMAP_LINE.findall(text)))


def parse_lastmod(value: str | None, today: date | None = None) -> date | None:
    """A W3C datetime (YYYY, YYYY-MM, YYYY-MM-DD[Thh:mm...]) as a date; None if invalid or in the future."""
    found = _W3C_DATE.match(value or "")
    if not found:
        return None
    year, month, day = (int(g) if g else 1 for g in found.groups())
    try:
        result = date(year, month, day)
    except ValueError:
        return None
    return result if result <= (today or datetime.now(UTC).date()) else None


def parse_sitemap(body: bytes, max_bytes: int) -> tuple[str, list[tuple[str, date | None]]]:
    """("urlset" | "sitemapindex", [(loc, lastmod)]) of a sitemap body (gzip allowed); ("", []) if unreadable."""
    from scrapy.utils.gz import gunzip
    from scrapy.utils.sitemap import Sitemap

    try:
        if body[:2] == b"\x1f\x8b":
            body = gunzip(body, max_size=max_bytes)
        sitemap = Sitemap(body)
        entries = [(entry["loc"].strip(), parse_lastmod(entry.get("lastmod"))) for entry in sitemap if "loc" in entry]
    except Exception as exc:  # not XML, too big once unzipped, ...
        log.info("unreadable sitemap: %s", exc)
        return "", []
    return sitemap.type, entries


class _Discovery:
    """Sitemap discovery state of one site."""

    def __init__(self, root: str):
        self.root = root
        self.seeds: list[str] = []
        self.pending = 0
        self.fetched = 0
        self.found: list[str] = []
        self.done = False


class SitemapDiscoveryMixin:
    """Mixed into SiteSpider: `_discover(seed, site)` yields discovery requests, then the seeds.

    The spider provides `_request(url, site, depth, reset=False)`; it reads
    `self.lastmod` (canonical URL -> date) when it yields a page.
    """

    def _init_sitemaps(self, settings) -> None:
        self.sitemaps_enabled = settings.getbool("SYNTHWEB_SITEMAPS", True)
        self.max_sitemaps = settings.getint("SYNTHWEB_MAX_SITEMAPS_PER_SITE", 20)
        self.sitemap_max_bytes = settings.getint("DOWNLOAD_MAXSIZE", 10 * 1024 * 1024)
        self.lastmod: dict[str, date] = {}
        self._discovery: dict[str, _Discovery] = {}

    def sitemap_date(self, *urls: str) -> date | None:
        for url in urls:
            found = self.lastmod.get(canonicalize_url(url))
            if found:
                return found
        return None

    def _discover(self, seed: str, site: str):
        state = self._discovery.get(site)
        if state is not None:
            if state.done:
                yield from self._seed_requests([seed], site)
            else:
                state.seeds.append(seed)
            return
        parts = urlsplit(seed)
        state = self._discovery[site] = _Discovery(f"{parts.scheme}://{parts.netloc}")
        state.seeds.append(seed)
        state.pending = 1
        yield self._discovery_request(state.root + "/robots.txt", site, self._on_robots, self._on_robots_error)

    def _discovery_request(self, url: str, site: str, callback, errback) -> scrapy.Request:
        # dont_obey_robotstxt: robots.txt itself is not subject to robots.txt. No "site" in meta: these
        # requests are not pages (not counted, not budgeted). depth_reset: what they yield starts at depth 0.
        meta = {"sitemap_site": site, "dont_obey_robotstxt": url.endswith("/robots.txt"), "depth_reset": True}
        return scrapy.Request(url, callback=callback, errback=errback, dont_filter=True, meta=meta, priority=10)

    def _sitemap_request(self, url: str, site: str):
        state = self._discovery[site]
        if state.fetched >= self.max_sitemaps or site_keys(url)[1] != site:
            return None
        state.fetched += 1
        state.pending += 1
        return self._discovery_request(url, site, self._on_sitemap, self._on_sitemap_error)

    def _on_robots(self, response):
        site = response.meta["sitemap_site"]
        robots = robots_middleware(self.crawler)
        if robots is not None:  # the same response is the site's rules: robots.txt is fetched once
            robots.adopt(response.request, response)
        text = response.text if hasattr(response, "text") else ""
        urls = robots_sitemaps(text) or [self._discovery[site].root + "/sitemap.xml"]
        yield from self._follow_sitemaps(urls, site)
        yield from self._settle(site)

    def _on_robots_error(self, failure):
        site = failure.request.meta["sitemap_site"]
        robots = robots_middleware(self.crawler)
        if robots is not None:  # a 4xx/5xx answer or an unreachable host decides the rules (RFC 9309) here too
            response = getattr(failure.value, "response", None)
            robots.adopt(failure.request, response, None if response is not None else failure.value)
        if not isinstance(failure.value, PrivateNetworkRefused):  # a refused host gets nothing more
            yield from self._follow_sitemaps([self._discovery[site].root + "/sitemap.xml"], site)
        yield from self._settle(site)

    def _on_sitemap(self, response):
        site = response.meta["sitemap_site"]
        kind, entries = parse_sitemap(response.body, self.sitemap_max_bytes)
        if kind == "sitemapindex":
            yield from self._follow_sitemaps([loc for loc, _ in entries], site)
        elif kind == "urlset":
            state = self._discovery[site]
            for loc, lastmod in entries:
                if site_keys(loc)[1] != site:
                    continue
                state.found.append(loc)
                if lastmod:
                    self.lastmod[canonicalize_url(loc)] = lastmod
            self.crawler.stats.inc_value("synthweb/sitemap_urls", len(entries))
        yield from self._settle(site)

    def _on_sitemap_error(self, failure):
        yield from self._settle(failure.request.meta["sitemap_site"])

    def _follow_sitemaps(self, urls: list[str], site: str):
        for url in urls:
            request = self._sitemap_request(url, site)
            if request is not None:
                yield request

    def _settle(self, site: str):
        """One discovery request finished; when none is left, release the seeds, then the sitemap URLs."""
        state = self._discovery[site]
        state.pending -= 1
        if state.pending > 0 or state.done:
            return
        state.done = True
        yield from self._seed_requests(state.seeds, site)
        for url in state.found:
            request = self._request(url, site, 0, reset=True)
            if request is not None:
                yield request

    def _seed_requests(self, seeds: list[str], site: str):
        for seed in seeds:
            request = self._request(seed, site, 0, reset=True)
            if request is not None:
                yield request
