"""KafkaPagesPipeline: the fleet path; sends every page of a crawl job to `pages.raw`.

The fleet spider (crawler/spiders/fleet.py) asks for a job's delivery report with the
`job_finished` signal once the job's site is crawled, and commits the job's offset
only when every page of it was acknowledged by Kafka.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from schemas.messages import MessageError, encode_dead_letter, encode_page, kafka_producer
from synthweb.pipeline import Page

log = logging.getLogger(__name__)

# Signals between the fleet spider and this pipeline (send_catch_log returns the handlers' results).
job_finished = object()  # kwargs: job -> JobDelivery
job_rejected = object()  # kwargs: reason, detail, topic, partition, offset, original -> JobDelivery

# What a record carries besides key and value (record headers, batch overhead): kept free under the limit.
RECORD_OVERHEAD_BYTES = 1024
# Longer than the producer's delivery_timeout_ms (120 s): by then every send has succeeded or failed.
FLUSH_SECONDS = 150.0


@dataclass
class JobDelivery:
    """What became of one job's messages: sent, acknowledged, failed (with the first error)."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    too_large: int = 0
    error: str = ""
    futures: list = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.acked == self.sent


class KafkaPagesPipeline:
    """Send each page as a `pages.raw` message keyed by the job's registered domain.

    Producer: acks=all, retries, gzip, idempotence, max_request_size from
    SYNTHWEB_MAX_MESSAGE_BYTES. A page whose message would be bigger is sent with
    skip="too_large" and its HTML dropped, so nothing accepted is lost. Sends are
    asynchronous; `finish_job` flushes and checks every send of the job.
    """

    def __init__(self, crawler):
        settings = crawler.settings
        self.crawler = crawler
        self.stats = crawler.stats
        self.topic = settings.get("SYNTHWEB_TOPIC_PAGES")
        self.dead_topic = settings.get("SYNTHWEB_TOPIC_DEAD")
        self.max_bytes = settings.getint("SYNTHWEB_MAX_MESSAGE_BYTES")
        self.producer = None
        self.delivery = JobDelivery()

    @classmethod
    def from_crawler(cls, crawler):
        pipeline = cls(crawler)
        crawler.signals.connect(pipeline.finish_job, signal=job_finished)
        crawler.signals.connect(pipeline.reject_job, signal=job_rejected)
        return pipeline

    def open_spider(self):
        self.producer = kafka_producer(self.crawler.settings, "synthweb-crawler")

    def process_item(self, item):
        if not isinstance(item, Page):
            return item
        job = getattr(self.crawler.spider, "job", None)
        job_id, key = (job.job_id, job.domain) if job is not None else ("", "")
        self._send(self.topic, key, self._encode(item, job_id))
        return item

    def _encode(self, page: Page, job_id: str) -> bytes:
        try:
            data = encode_page(page, job_id)
        except MessageError as exc:
            # Cannot happen for pages the spider builds; keep the URL as a recorded skip, not a loss.
            log.error("page %s does not fit the raw_page schema: %s", page.url, exc)
            data = encode_page(dataclasses.replace(page, html="", skip="invalid", skip_detail=str(exc)[:500]), job_id)
        if len(data) + RECORD_OVERHEAD_BYTES > self.max_bytes:
            detail = f"message of {len(data)} bytes over SYNTHWEB_MAX_MESSAGE_BYTES={self.max_bytes}; html dropped"
            page = dataclasses.replace(page, html="", skip="too_large", skip_detail=detail)
            data = encode_page(page, job_id)
            self.delivery.too_large += 1
            self.stats.inc_value("synthweb/kafka/too_large")
        return data

    def _send(self, topic: str, key: str, value: bytes) -> None:
        self.delivery.sent += 1
        try:
            future = self.producer.send(topic, key=key.encode("utf-8"), value=value)
        except Exception as exc:  # buffer full for max_block_ms, no metadata, ...
            self._failed(exc)
            return
        future.add_errback(self._failed)
        self.delivery.futures.append(future)

    def _failed(self, exc) -> None:
        # Runs on the producer's I/O thread for async failures: only counters and a log line here.
        self.delivery.failed += 1
        self.stats.inc_value("synthweb/kafka/send_failed")  # the fleet spider stops the job on this
        if not self.delivery.error:
            self.delivery.error = f"{type(exc).__name__}: {exc}"[:500]
        log.error("sending to Kafka failed: %s: %s", type(exc).__name__, exc)

    def finish_job(self, job) -> JobDelivery:
        """Flush, check every send since the last job, and start a fresh report."""
        delivery, self.delivery = self.delivery, JobDelivery()
        try:
            self.producer.flush(timeout=FLUSH_SECONDS)
        except Exception as exc:  # KafkaTimeoutError: not all acknowledged in time
            delivery.error = delivery.error or f"{type(exc).__name__}: {exc}"
        for future in delivery.futures:
            if future.succeeded():
                delivery.acked += 1
            elif not future.is_done:
                delivery.failed += 1
                delivery.error = delivery.error or "not acknowledged before the flush timeout"
        delivery.futures = []
        self.stats.inc_value("synthweb/kafka/acked", delivery.acked)
        return delivery

    def reject_job(self, reason, detail, topic, partition, offset, original) -> JobDelivery:
        """Send an unusable crawl job to the dead-letter topic; report whether Kafka has it."""
        self._send(self.dead_topic, "", encode_dead_letter(reason, detail, topic, partition, offset, original))
        return self.finish_job(None)

    def close_spider(self):
        if self.producer is not None:
            self.producer.flush(timeout=FLUSH_SECONDS)
            self.producer.close(timeout=10)
            self.producer = None
