"""StagesPipeline: the embedded path; runs the SYNTHWEB_STAGES on batches of scraped pages."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from synthweb.pipeline import BatchFailing, Page, Pipeline, run_with_retries

log = logging.getLogger(__name__)
batch_processed = object()  # Scrapy signal: a batch went through the stages (kwargs: pages)


class StagesPipeline:
    """Buffer pages into batches of SYNTHWEB_BATCH_SIZE and run the stage pipeline on each.

    Batches run on one worker thread, off the reactor, one at a time: stages may
    hold a single connection or model session, and the reactor stays free to fetch.
    `process_item` awaits the batch it fills, which gives Scrapy backpressure
    while the batch is processed.

    A failing batch is retried, then tried page by page (synthweb.pipeline.run_with_retries): a page
    failing alone is counted failed. While every page fails alone (the store refuses writes) the crawl
    waits, holding the pages it fetched, for up to `give_up_after` seconds; then it stops with reason
    `store_failed`, and `synthweb run` says how many pages were not stored.
    """

    def __init__(
        self, crawler, pipeline: Pipeline, batch_size: int, delays=(0.5, 1.0, 2.0, 5.0), give_up_after: float = 300.0
    ):
        self.crawler = crawler
        self.stats = crawler.stats
        self.pipeline = pipeline
        self.batch_size = max(1, batch_size)
        self.delays = tuple(delays)
        self.give_up_after = give_up_after
        self.gave_up = False
        self.buffer: list[Page] = []
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="synthweb-stages")

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        return cls(
            crawler,
            Pipeline.from_settings(settings),
            settings.getint("SYNTHWEB_BATCH_SIZE", 64),
            delays=[float(s) for s in settings.getlist("SYNTHWEB_RETRY_SECONDS", [0.5, 1.0, 2.0, 5.0])],
            give_up_after=settings.getfloat("SYNTHWEB_STORE_GIVE_UP_SECONDS", 300.0),
        )

    def open_spider(self):
        self.pool.start()

    async def process_item(self, item):
        if not isinstance(item, Page):
            return item
        self.buffer.append(item)
        if len(self.buffer) >= self.batch_size:
            batch, self.buffer = self.buffer, []
            await maybe_deferred_to_future(self._run(batch))
        return item

    def _run(self, batch: list[Page]) -> defer.Deferred:
        from twisted.internet import reactor  # imported late: Scrapy installs the reactor

        d = deferToThreadPool(reactor, self.pool, self._process, batch)
        d.addCallbacks(self._count, self._failed, errbackArgs=(batch,))
        return d

    def _process(self, batch: list[Page]) -> tuple[list[Page], list[tuple[Page, Exception]]]:
        """On the stages thread: (pages through the stages, pages that failed alone)."""
        done: list[Page] = []

        def run(pages: list[Page]) -> None:
            # Fresh copies each try (stages change pages in place); the token makes a retried insert land once.
            copies = [dataclasses.replace(p) for p in pages]
            done.extend(self.pipeline.process(copies, dedup_token=batch_token(pages)))

        if self.gave_up:  # the crawl is stopping: one try each, no more waiting
            failed = run_with_retries(run, batch, (0.0,), give_up_after=0.0)
        else:
            failed = run_with_retries(run, batch, self.delays, give_up_after=self.give_up_after)
        return done, failed

    def _count(self, outcome: tuple[list[Page], list[tuple[Page, Exception]]]) -> None:
        pages, failed = outcome
        for page, exc in failed:
            log.error("page %s failed alone in the stages, not stored: %s: %s", page.url, type(exc).__name__, exc)
        if failed:
            self.stats.inc_value("synthweb/pages_failed", len(failed))
        for page in pages:
            if page.skip:
                self.stats.inc_value(f"synthweb/skipped/{page.skip}")
            else:
                self.stats.inc_value("synthweb/pages_stored")
        self.crawler.signals.send_catch_log(batch_processed, pages=pages)

    def _failed(self, failure, batch: list[Page]) -> None:
        self.stats.inc_value("synthweb/batches_failed")
        self.stats.inc_value("synthweb/pages_failed", len(batch))
        if failure.check(BatchFailing):
            log.error("the stages (the store?) refused a batch of %d pages: %s", len(batch), failure.value)
            if not self.gave_up:
                self.gave_up = True
                self._stop_crawl()
        else:
            log.error("stage pipeline failed on a batch of %d pages: %s", len(batch), failure.getTraceback())

    def _stop_crawl(self) -> None:
        from scrapy.utils.defer import deferred_from_coro

        log.error("stopping the crawl: nothing fetched from now on could be stored")
        deferred_from_coro(self.crawler.engine.close_spider_async(reason="store_failed"))

    async def close_spider(self):
        from twisted.internet import reactor

        try:
            if self.buffer:
                batch, self.buffer = self.buffer, []
                await maybe_deferred_to_future(self._run(batch))
            await maybe_deferred_to_future(deferToThreadPool(reactor, self.pool, self.pipeline.close))
        finally:
            self.pool.stop()


def batch_token(pages: list[Page]) -> str:
    """The insert_deduplication_token of a batch: its snapshot(s) and urls, so a retry of it is stored once."""
    keys = "\n".join(f"{p.snapshot}\t{p.url}" for p in pages)
    return "embedded:" + hashlib.sha1(keys.encode("utf-8")).hexdigest()
