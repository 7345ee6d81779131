"""Downloader middlewares and the AutoThrottle variant that keep the crawler safe and polite.

* `PrivateNetworkGuard` refuses requests to hosts that resolve to non-public
  addresses (SSRF protection: a crawled page must not make us fetch our own
  network, a cloud metadata endpoint or localhost).
* `RobotsCrawlDelayMiddleware` is Scrapy's robots.txt middleware plus Crawl-delay,
  which Scrapy itself ignores; `CrawlDelayAutoThrottle` keeps AutoThrottle from
  lowering a slot's delay below it.
"""

from __future__ import annotations

import ipaddress
import logging

from scrapy import signals
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.extensions.throttle import AutoThrottle
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached

log = logging.getLogger(__name__)
DISALLOW_ALL = b"User-agent: *\nDisallow: /\n"
ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 2.5: crawlers parse at least the first 500 KiB

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# Cloud metadata services (AWS, GCP, Azure, OpenStack; AWS IPv6; Alibaba; Oracle): never fetched, whatever
# SYNTHWEB_ALLOW_PRIVATE_NETWORKS says, and neither is any other link-local address.
_METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")}
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal"})  # fmt: skip


class PrivateNetworkRefused(IgnoreRequest):
    """The request's host resolves to an address we must not crawl."""


class OffsiteRedirectRefused(IgnoreRequest):
    """A redirect to another site (or another port of an IP host): recorded on the page, not followed."""


def address_allowed(ip: str, allow_private: bool = False) -> bool:
    """The one address policy: public unicast always; private, loopback and CGNAT ranges only with
    `allow_private`; link-local, metadata, multicast, reserved and unspecified addresses never."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr in _METADATA or addr.is_link_local or addr.is_multicast or addr.is_reserved or addr.is_unspecified:
        return False
    return allow_private or is_public_address(str(addr))


def strip_userinfo(url: str) -> str:
    """`url` without user:password@ (never sent, stored or logged)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if "@" in parts.netloc else url


def same_site(url: str, other: str) -> bool:
    """Whether a redirect from `url` to `other` stays on the crawled site: the same registered domain, and for
    IP hosts the same address and port."""
    from urllib.parse import urlsplit

    from crawler.extract import site_keys

    a, b = urlsplit(url), urlsplit(other)
    if site_keys(url)[1] != site_keys(other)[1]:
        return False
    try:
        ipaddress.ip_address((a.hostname or "").split("%", 1)[0])
    except ValueError:
        return True
    default = {"http": 80, "https": 443}
    return (a.port or default.get(a.scheme)) == (b.port or default.get(b.scheme))


def is_public_address(ip: str) -> bool:
    """True only for globally routable unicast addresses."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped  # ::ffff:127.0.0.1 is loopback in disguise
    if addr in _METADATA or (addr.version == 4 and addr in _CGNAT):
        return False
    return addr.is_global and not (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_reserved
        or addr.is_multicast
        or addr.is_unspecified
    )


class PrivateNetworkGuard:
    """Refuse requests whose host is, or resolves to, an address the policy (`address_allowed`) refuses,
    and redirects that leave the site.

    Runs before the robots.txt middleware so neither the page nor its robots.txt
    is fetched; redirects come back through here as new requests, so every hop is
    checked on its resolved address. Resolution failures pass through so the
    download fails normally ("fetch_error"). SYNTHWEB_ALLOW_PRIVATE_NETWORKS (tests,
    intranet crawls) allows private and loopback ranges, never metadata or link-local ones.
    """

    def __init__(self, crawler):
        self.crawler = crawler
        self.allow_private = crawler.settings.getbool("SYNTHWEB_ALLOW_PRIVATE_NETWORKS")

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_request(self, request):
        parts = urlparse_cached(request)
        host = (parts.hostname or "").rstrip(".").lower()
        if not host or parts.scheme not in ("http", "https"):
            return None
        if "@" in parts.netloc:  # a link or redirect carrying credentials: fetched (and stored) without them
            return request.replace(url=strip_userinfo(request.url))
        first = (request.meta.get("redirect_urls") or [None])[0]
        if first is not None and not same_site(first, request.url):
            self.crawler.stats.inc_value("synthweb/offsite_redirect_refused")
            raise OffsiteRedirectRefused(f"redirect off the site, not followed: {request.url}"[:300])
        if host in METADATA_HOSTS:
            self.crawler.stats.inc_value("synthweb/private_network_refused")
            raise PrivateNetworkRefused(f"refused {host}: a cloud metadata service")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            addresses = [host]
        except ValueError:
            from twisted.internet import reactor

            try:
                # The reactor's resolver is Scrapy's caching resolver: the connection made
                # for this request reuses the address checked here, so a DNS server cannot
                # answer a public address to us and a private one to the downloader.
                addresses = [await maybe_deferred_to_future(reactor.resolve(host))]
            except Exception:  # DNS failure: let the download fail normally ("fetch_error")
                return None
        for ip in addresses:
            if not address_allowed(ip, self.allow_private):
                self.crawler.stats.inc_value("synthweb/private_network_refused")
                raise PrivateNetworkRefused(f"refused {host}: resolves to non-public address {ip}")
        return None


def robots_middleware(crawler) -> RobotsCrawlDelayMiddleware | None:
    """The crawl's robots.txt middleware, if robots.txt is obeyed."""
    engine = getattr(crawler, "engine", None)
    middlewares = engine.downloader.middleware.middlewares if engine is not None else ()
    return next((m for m in middlewares if isinstance(m, RobotsCrawlDelayMiddleware)), None)


class RobotsCrawlDelayMiddleware(RobotsTxtMiddleware):
    """Scrapy's RobotsTxtMiddleware that also honours `Crawl-delay`.

    When a host's robots.txt is parsed, its crawl delay (capped by
    SYNTHWEB_MAX_CRAWL_DELAY) becomes the download slot's delay, and is recorded
    in the downloader's per-slot settings so a slot re-created after garbage
    collection keeps it and `CrawlDelayAutoThrottle` treats it as a floor.
    """

    def __init__(self, crawler):
        super().__init__(crawler)
        self._max_crawl_delay = crawler.settings.getfloat("SYNTHWEB_MAX_CRAWL_DELAY", 60.0)

    async def _parse_robots(self, response, netloc, request):
        # RFC 9309 2.3.1: a 4xx robots.txt allows everything (its error page is no rule set); a 5xx one, after
        # Scrapy's retries, means the rules are unknown, so nothing is crawled; at most 500 KiB is parsed.
        if response.status >= 500:
            log.warning("robots.txt of %s answered %d: the site is treated as disallowed", netloc, response.status)
            response = response.replace(body=DISALLOW_ALL)
        elif response.status >= 400:
            response = response.replace(body=b"")
        elif len(response.body) > ROBOTS_MAX_BYTES:
            response = response.replace(body=response.body[:ROBOTS_MAX_BYTES])
        await super()._parse_robots(response, netloc, request)
        parser = self._parsers.get(netloc)
        if parser is not None:
            self._apply_crawl_delay(parser, request)

    def adopt(self, request, response=None, exc: Exception | None = None) -> None:
        """Take a robots.txt the spider fetched itself (sitemap discovery: `response`, or the `exc` it failed with)
        as its host's rules, so robots.txt is fetched once per site, not once more by this middleware.

        Requests for the host that arrive before the rules are parsed wait for them, as they would for a fetch
        of our own."""
        from scrapy.utils.defer import deferred_from_coro
        from scrapy.utils.httpobj import urlparse_cached
        from twisted.internet.defer import Deferred

        netloc = urlparse_cached(request).netloc
        if netloc in self._parsers:
            return
        self._parsers[netloc] = Deferred()
        self._stats.inc_value("robotstxt/request_count")
        if response is None:
            self._robots_error(exc, netloc)
            return
        parsing = deferred_from_coro(self._parse_robots(response, netloc, request))
        parsing.addErrback(lambda failure: self._robots_error(failure.value, netloc))

    def _robots_error(self, exc, netloc) -> None:
        if isinstance(exc, IgnoreRequest):  # refused by us (a private address, ...): its pages are refused too
            super()._robots_error(exc, netloc)
            return
        # RFC 9309 2.3.1.4: robots.txt unreachable (connection refused, timeouts): complete disallow.
        from scrapy.utils.misc import build_from_crawler

        log.warning("robots.txt of %s unreachable (%s): the site is treated as disallowed", netloc, exc)
        self._stats.inc_value(f"robotstxt/exception_count/{type(exc)}")
        parser = build_from_crawler(self._parserimpl, self.crawler, DISALLOW_ALL)
        waiting, self._parsers[netloc] = self._parsers[netloc], parser
        waiting.callback(parser)

    def _apply_crawl_delay(self, parser, request) -> None:
        useragent = self._robotstxt_useragent or self._default_useragent
        try:
            delay = parser.crawl_delay(useragent)
        except Exception:  # a custom parser may not implement it
            return
        if not delay or delay <= 0:
            return
        delay = min(float(delay), self._max_crawl_delay)
        downloader = self.crawler.engine.downloader
        key = downloader.get_slot_key(request)
        conf = downloader.per_slot_settings.setdefault(key, {})
        conf["delay"] = max(float(conf.get("delay", 0.0)), delay)
        # Jitter would randomise the delay down to half of it; a floor must not move.
        conf["jitter"] = 0.0
        slot = downloader.slots.get(key)
        if slot is not None:
            slot.delay = max(slot.delay, conf["delay"])
            slot.jitter = 0.0
        self.crawler.stats.set_value(f"synthweb/crawl_delay/{key}", delay)
        log.info("honouring Crawl-delay %.2fs for %s", delay, key)


class CrawlDelayAutoThrottle(AutoThrottle):
    """AutoThrottle that never lowers a slot's delay below its configured floor.

    AutoThrottle (scrapy 2.19) rewrites `slot.delay` on every response, bounded
    only by DOWNLOAD_DELAY and AUTOTHROTTLE_MAX_DELAY; this re-applies the per-slot
    delay from DOWNLOAD_SLOTS (where robots.txt Crawl-delay is recorded) afterwards.
    """

    def __init__(self, crawler):
        super().__init__(crawler)
        crawler.signals.connect(self._enforce_floor, signal=signals.response_downloaded)

    def _enforce_floor(self, response, request, spider) -> None:
        # Connected after AutoThrottle's own handler, so it runs after the adjustment.
        key, slot = self._get_slot(request, spider)
        if slot is None:
            return
        floor = self.crawler.engine.downloader.per_slot_settings.get(key, {}).get("delay")
        if floor and slot.delay < floor:
            slot.delay = float(floor)
