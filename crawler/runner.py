"""Run a crawl of some seeds in-process, with a live progress display and a summary."""

from __future__ import annotations

import time
from typing import Any

from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from crawler.spiders.site import SiteSpider


def load_crawl_settings(overrides: Settings | dict[str, Any] | None = None) -> Settings:
    """Project settings (crawler.settings) with `overrides` applied on top."""
    if isinstance(overrides, Settings):
        return overrides
    from synthweb.config import load_settings

    return load_settings(dict(overrides or {}))


class CrawlProgress:
    """Counts driven by Scrapy signals, rendered with rich while the crawl runs."""

    def __init__(self, crawler, show: bool):
        self.crawler = crawler
        self.fetched = 0
        self.started = time.monotonic()
        self.live = None
        crawler.signals.connect(self._response, signal=signals.response_received)
        crawler.signals.connect(self._refresh, signal=signals.item_scraped)
        if show:
            crawler.signals.connect(self._open, signal=signals.engine_started)
            crawler.signals.connect(self._close, signal=signals.engine_stopped)

    def _response(self, response, request, spider) -> None:
        # Only the spider's own requests count; robots.txt fetches carry no "site".
        if "site" in request.meta:
            self.fetched += 1
            self._refresh()

    def counts(self) -> dict[str, Any]:
        stats = self.crawler.stats.get_stats()
        skipped = {
            key.removeprefix("synthweb/skipped/"): value
            for key, value in sorted(stats.items())
            if key.startswith("synthweb/skipped/")
        }
        seconds = time.monotonic() - self.started
        return {
            "pages_fetched": self.fetched,
            "pages_yielded": stats.get("item_scraped_count", 0),
            "pages_stored": stats.get("synthweb/pages_stored", 0),
            "pages_skipped": sum(skipped.values()),
            "skipped": skipped,
            "pages_failed": stats.get("synthweb/pages_failed", 0),
            "seconds": round(seconds, 2),
            "pages_per_second": round(self.fetched / seconds, 2) if seconds else 0.0,
            "finish_reason": stats.get("finish_reason", ""),
        }

    def _render(self):
        from rich.table import Table

        c = self.counts()
        table = Table(title="synthweb crawl", show_header=False, min_width=40)
        table.add_row("pages fetched", str(c["pages_fetched"]))
        table.add_row("stored", str(c["pages_stored"]))
        skipped = ", ".join(f"{k} {v}" for k, v in c["skipped"].items())
        table.add_row("skipped", f"{c['pages_skipped']}" + (f" ({skipped})" if skipped else ""))
        table.add_row("pages/s", f"{c['pages_per_second']:.1f}")
        return table

    def _open(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.started = time.monotonic()
        self.live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4)
        self.live.start()

    def _refresh(self, *args, **kwargs) -> None:
        if self.live is not None:
            self.live.update(self._render())

    def _close(self) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.stop()
            self.live = None


def run_crawl(
    seeds: list[str], settings: Settings | dict[str, Any] | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Crawl `seeds` with SiteSpider and the SYNTHWEB_STAGES; return a summary.

    The summary has pages_fetched, pages_stored, pages_skipped, skipped (by reason),
    seconds, pages_per_second and finish_reason. Call once per process: the Twisted
    reactor cannot be restarted.
    """
    settings = load_crawl_settings(settings)
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(SiteSpider)
    progress = CrawlProgress(crawler, show_progress)
    process.crawl(
        crawler,
        seeds=list(seeds),
        max_pages_per_site=settings.getint("SYNTHWEB_MAX_PAGES_PER_SITE", 200),
        snapshot=settings.get("SYNTHWEB_SNAPSHOT") or None,
    )
    process.start()
    return progress.counts()


def run_fleet(
    settings: Settings | dict[str, Any] | None = None, max_jobs: int = 0, idle_exit: float = 0
) -> dict[str, Any]:
    """Run one fleet crawler (FleetSpider) until max_jobs, idle_exit, a signal or a failure; return a summary.

    The summary has jobs (one entry per job done: job_id, domain, pages, committed...),
    pages, failure ("" unless pages could not be delivered) and finish_reason.
    """
    from crawler.spiders.fleet import FleetSpider

    settings = load_crawl_settings(settings)
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(FleetSpider)
    process.crawl(crawler, max_jobs=max_jobs, idle_exit=idle_exit)
    process.start()
    spider = crawler.spider
    jobs = spider.summary if spider else []
    failure = spider.failure if spider else ""
    if not failure and process.bootstrap_failed:
        failure = "the crawler could not start (Kafka unreachable? see the log)"
    return {
        "jobs": jobs,
        "pages": sum(job["pages"] for job in jobs),
        "failure": failure,
        "finish_reason": crawler.stats.get_value("finish_reason", ""),
    }
