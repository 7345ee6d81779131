"""StagesPipeline: the embedded path; runs the SYNTHWEB_STAGES on batches of scraped pages."""

from __future__ import annotations

import logging

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from synthweb.pipeline import Page, Pipeline

log = logging.getLogger(__name__)
batch_processed = object()  # Scrapy signal: a batch went through the stages (kwargs: pages)


class StagesPipeline:
    """Buffer pages into batches of SYNTHWEB_BATCH_SIZE and run the stage pipeline on each.

    Batches run on one worker thread, off the reactor, one at a time: stages may
    hold a single connection or model session, and the reactor stays free to fetch.
    `process_item` awaits the batch it fills, which gives Scrapy backpressure
    while the batch is processed.
    """

    def __init__(self, crawler, pipeline: Pipeline, batch_size: int):
        self.crawler = crawler
        self.stats = crawler.stats
        self.pipeline = pipeline
        self.batch_size = max(1, batch_size)
        self.buffer: list[Page] = []
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="synthweb-stages")

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        return cls(crawler, Pipeline.from_settings(settings), settings.getint("SYNTHWEB_BATCH_SIZE", 64))

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

        d = deferToThreadPool(reactor, self.pool, self.pipeline.process, batch)
        d.addCallbacks(self._count, self._failed, errbackArgs=(batch,))
        return d

    def _count(self, pages: list[Page]) -> None:
        for page in pages:
            if page.skip:
                self.stats.inc_value(f"synthweb/skipped/{page.skip}")
            else:
                self.stats.inc_value("synthweb/pages_stored")
        self.crawler.signals.send_catch_log(batch_processed, pages=pages)

    def _failed(self, failure, batch: list[Page]) -> None:
        # A failing stage loses this batch but must not stop the crawl.
        log.error("stage pipeline failed on a batch of %d pages: %s", len(batch), failure.getTraceback())
        self.stats.inc_value("synthweb/batches_failed")
        self.stats.inc_value("synthweb/pages_failed", len(batch))

    async def close_spider(self):
        from twisted.internet import reactor

        try:
            if self.buffer:
                batch, self.buffer = self.buffer, []
                await maybe_deferred_to_future(self._run(batch))
            await maybe_deferred_to_future(deferToThreadPool(reactor, self.pool, self.pipeline.close))
        finally:
            self.pool.stop()
