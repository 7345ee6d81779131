"""Run a crawl of some seeds in-process, with a live progress display and a summary."""

from __future__ import annotations

import time
from typing import Any

from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from crawler.spiders.site import SiteSpider
from synthweb.driver import Progress


def load_crawl_settings(overrides: Settings | dict[str, Any] | None = None) -> Settings:
    """Project settings (crawler.settings) with `overrides` applied on top."""
    if isinstance(overrides, Settings):
        return overrides
    from synthweb.config import load_settings

    return load_settings(dict(overrides or {}))


class CrawlProgress:
    """The crawl's counts, from Scrapy's signals and stats, drawn while it runs by the one progress display
    (synthweb.driver.Progress: a line with the pages through the stages, pages/s, stored and skipped)."""

    def __init__(self, crawler, show: bool):
        from crawler.pipelines import batch_processed

        self.crawler = crawler
        self.fetched = 0
        self.started = time.monotonic()
        self.display = Progress(show)
        self.task = None
        crawler.signals.connect(self._response, signal=signals.response_received)
        if show:
            crawler.signals.connect(self._batch, signal=batch_processed)
            crawler.signals.connect(self._open, signal=signals.engine_started)
            crawler.signals.connect(self._close, signal=signals.engine_stopped)

    def _response(self, response, request, spider) -> None:
        # Only the spider's own requests count; robots.txt fetches carry no "site".
        if "site" in request.meta:
            self.fetched += 1

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
            "links_capped": stats.get("synthweb/links_capped", 0),
            "seconds": round(seconds, 2),
            "pages_per_second": round(self.fetched / seconds, 2) if seconds else 0.0,
            "finish_reason": stats.get("finish_reason", ""),
        }

    def _open(self) -> None:
        self.started = time.monotonic()
        self.display.__enter__()
        self.task = self.display.task("crawl")

    def _batch(self, pages) -> None:
        self.display.count(self.task, pages)

    def _close(self) -> None:
        self.display.finish(self.task)
        self.display.__exit__(None, None, None)


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
