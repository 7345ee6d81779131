"""FleetSpider: a crawler of the fleet; takes one crawl job (one site) at a time from Kafka.

    scrapy crawl fleet [-a max_jobs=N] [-a idle_exit=S]      # or: synthweb crawler

Crawlers join the consumer group SYNTHWEB_CRAWLER_GROUP on SYNTHWEB_TOPIC_JOBS, so a
site is crawled by one crawler at a time and per-host politeness holds fleet-wide.
Pages go to SYNTHWEB_TOPIC_PAGES through `KafkaPagesPipeline`; a job's offset is
committed only after every one of its pages is acknowledged, so a crawler killed
mid-job has its job redelivered to another crawler (at-least-once; the worker
deduplicates by snapshot and URL). A job whose commit failed after all its pages
were acknowledged (the crawler had been dropped from the group) is committed, not
crawled again, if the group hands it back to the same crawler.
"""

from __future__ import annotations

import logging
import time

from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.defer import deferred_from_coro
from twisted.internet import task

from crawler.kafka_pipeline import JobDelivery, job_finished, job_rejected
from crawler.spiders.site import SiteSpider, site_of
from crawler.traps import TrapGuard
from schemas.messages import CrawlJob, MessageError, decode_job

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25  # how often an idle crawler polls for a job (and a busy one checks for the job's end)
POLL_MS = 100  # the longest one poll blocks the reactor; only done while no job runs
DEADLINE_SHARE = 0.8  # past this share of SYNTHWEB_MAX_JOB_SECONDS a job schedules no new requests


class FleetSpider(SiteSpider):
    """SiteSpider fed by crawl jobs from Kafka instead of seeds; see the module docstring.

    `max_jobs` stops the crawler after that many jobs, `idle_exit` after that many
    seconds as a group member without a job (0: run until stopped). `summary` lists
    the jobs done.
    """

    name = "fleet"
    custom_settings = {"ITEM_PIPELINES": {"crawler.kafka_pipeline.KafkaPagesPipeline": 300}}

    def __init__(self, max_jobs=0, idle_exit=0, *args, **kwargs):
        kwargs.pop("seeds", None)  # seeds come from jobs
        super().__init__(*args, **kwargs)
        self.max_jobs = int(max_jobs or 0)
        self.idle_exit = float(idle_exit or 0)
        self.job: CrawlJob | None = None
        self.summary: list[dict] = []  # one entry per finished job
        self.failure = ""  # why the crawler stopped early (delivery failed), "" if it did not
        self.consumer = None
        self._job_record = None
        # Jobs this crawler finished whose commit failed (it had been dropped from the group): if the group hands
        # one back, its pages are all acknowledged already, so it is committed, not crawled again.
        self._done_uncommitted: dict[tuple[str, int, int], dict] = {}
        self._job_started = 0.0
        self._last_active = time.monotonic()
        self._closing = False
        self._loop = None  # made in _opened: a LoopingCall made earlier would install the default reactor

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.jobs_topic = settings.get("SYNTHWEB_TOPIC_JOBS")
        spider.max_job_seconds = settings.getfloat("SYNTHWEB_MAX_JOB_SECONDS", 1800)
        crawler.signals.connect(spider._opened, signal=signals.spider_opened)
        crawler.signals.connect(spider._idle, signal=signals.spider_idle)
        crawler.signals.connect(spider._closed, signal=signals.spider_closed)
        return spider

    # --- Kafka consumer -------------------------------------------------------
    def _make_consumer(self):
        from kafka import KafkaConsumer
        from kafka.consumer.subscription_state import ConsumerRebalanceListener

        spider = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                log.info("crawl.jobs partitions revoked: %s", sorted(tp.partition for tp in revoked))

            def on_partitions_assigned(self, assigned):
                log.info("crawl.jobs partitions assigned: %s", sorted(tp.partition for tp in assigned))
                spider._last_active = time.monotonic()  # waiting for a rebalance is not idleness

        settings = self.crawler.settings
        session_ms = int(settings.getfloat("SYNTHWEB_CRAWLER_SESSION_SECONDS", 45) * 1000)
        consumer = KafkaConsumer(
            bootstrap_servers=settings.get("SYNTHWEB_KAFKA_BOOTSTRAP"),
            group_id=settings.get("SYNTHWEB_CRAWLER_GROUP"),
            client_id="synthweb-crawler",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1,
            # The consumer is not polled while a job runs: a job may take this long.
            max_poll_interval_ms=int(self.max_job_seconds * 1000) + 60_000,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(500, session_ms // 4),
        )
        # Topic metadata first: subscribing without it makes the first assignment empty and costs a rebalance.
        consumer.partitions_for_topic(self.jobs_topic)
        consumer.subscribe([self.jobs_topic], listener=Listener())
        self._rejoin_seconds = max(30.0, 3 * session_ms / 1000)
        self._unstable_since = None
        return consumer

    # --- lifecycle ------------------------------------------------------------
    async def start(self):
        return
        yield  # an async generator with no start requests: jobs bring them

    def _opened(self, spider):
        try:
            self.consumer = self._make_consumer()
        except Exception as exc:  # no broker reachable, bad settings
            self.failure = f"cannot join {self.jobs_topic}: {type(exc).__name__}: {exc}"
            log.error("%s", self.failure)
            self._close("kafka_unreachable")
            return
        self._last_active = time.monotonic()
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(TICK_SECONDS, now=False)

    def _idle(self, spider):
        # Never let Scrapy close an idle fleet crawler: it waits for jobs; `_close` ends it.
        self._tick()
        raise DontCloseSpider

    def _tick(self) -> None:
        """Finish the running job once the engine is idle; take the next job; stop when told to."""
        if self._closing:
            return
        try:
            if self.job is not None:
                if self.crawler.stats.get_value("synthweb/kafka/send_failed"):
                    # A page is lost for this job already: stop now, uncommitted, rather than crawl on.
                    return self._fail(f"job {self.job.job_id} ({self.job.domain}): pages not acknowledged")
                if not self.crawler.engine.spider_is_idle():
                    return
                self._finish_job()
            if self.job is None and not self._closing:
                self._next_job()
        except Exception as exc:
            log.exception("fleet crawler failed")
            self.failure = self.failure or f"fleet crawler failed: {type(exc).__name__}: {exc}"
            self._close("fleet_error")

    def _close(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        log.info("fleet crawler stopping: %s", reason)
        deferred_from_coro(self.crawler.engine.close_spider_async(reason=reason))

    def _closed(self, spider, reason):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self.consumer is not None:
            # No commit on close: a job in progress stays uncommitted and goes to another crawler.
            self.consumer.close(autocommit=False)
            self.consumer = None

    # --- jobs -----------------------------------------------------------------
    def _next_job(self) -> None:
        from kafka.structs import MemberState

        if self.max_jobs and len(self.summary) >= self.max_jobs:
            return self._close("max_jobs")
        now = time.monotonic()
        state = self.consumer.group_metadata().state
        if state is not MemberState.STABLE:
            self._last_active = now  # joining or rebalancing: not idle, just not in the group yet
            self._unstable_since = self._unstable_since or now
            if now - self._unstable_since > self._rejoin_seconds:
                # Seen under heavy CPU load with kafka-python 3.0.12: a join that never completes. No job
                # is running here, so a fresh consumer is safe; a legitimately long rebalance just restarts.
                log.warning("not in group after %.0fs (%s): reconnecting", now - self._unstable_since, state)
                self.consumer.close(autocommit=False)
                self.consumer = self._make_consumer()
                return
        else:
            self._unstable_since = None
            if self.idle_exit and now - self._last_active >= self.idle_exit:
                return self._close("idle_exit")
        records = self.consumer.poll(timeout_ms=POLL_MS, max_records=1)
        for messages in records.values():
            for record in messages:
                self._begin(record)

    def _begin(self, record) -> None:
        done = self._done_uncommitted.pop((record.topic, record.partition, record.offset), None)
        if done is not None:
            log.info("job %s: %s already crawled here, its commit failed: committing it now", done["job_id"],
                     done["domain"])  # fmt: skip
            if self._commit(record, done["job_id"]):
                done["committed"] = True
            else:
                self._done_uncommitted[record.topic, record.partition, record.offset] = done
            return
        try:
            job = decode_job(record.value)
        except MessageError as exc:
            log.error("unusable crawl job at %s:%d@%d: %s", record.topic, record.partition, record.offset, exc)
            results = self.crawler.signals.send_catch_log(
                signal=job_rejected,
                reason=exc.reason,
                detail=exc.detail,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                original=record.value,
            )
            if self._delivered(results):
                self._commit(record, "")
            else:
                self._fail(f"dead letter for {record.topic}:{record.partition}@{record.offset} not delivered")
            return
        self.job, self._job_record, self._job_started = job, record, time.monotonic()
        # Per-job crawl state: the budget, dedup and trap guards start afresh, robots.txt is re-read.
        self.snapshot = job.snapshot
        self.max_pages_per_site = job.max_pages
        self.scheduled.clear()
        self.yielded.clear()
        self._seen.clear()
        self.traps = TrapGuard.from_settings(self.crawler.settings)
        self._forget_robots()
        log.info("job %s: %s (%d seeds, max %d pages)", job.job_id, job.domain, len(job.seeds), job.max_pages)
        self._discovery.clear()  # sitemaps are read afresh per job, as robots.txt is
        for url in job.seeds:
            site = site_of(url)
            if site != job.domain:
                log.warning("job %s: seed %s is not on %s", job.job_id, url, job.domain)
            if self.sitemaps_enabled:
                requests = list(self._discover(url, site))
            else:
                requests = [self._request(url, site, depth=0)]
            for request in requests:
                if request is not None:
                    self.crawler.engine.crawl(request)

    def _forget_robots(self) -> None:
        # Scrapy's robots middleware caches robots.txt for the process; a new job must see today's file.
        for mw in self.crawler.engine.downloader.middleware.middlewares:
            parsers = getattr(mw, "_parsers", None)
            if isinstance(parsers, dict):
                parsers.clear()

    def _request(self, url, site, depth, reset=False):
        if self.job is not None and time.monotonic() - self._job_started > DEADLINE_SHARE * self.max_job_seconds:
            # Past the deadline the group would hand the job to another crawler; end it instead.
            self.crawler.stats.inc_value("synthweb/job_deadline_refused")
            return None
        return super()._request(url, site, depth, reset=reset)

    def _finish_job(self) -> None:
        job, record = self.job, self._job_record
        results = self.crawler.signals.send_catch_log(signal=job_finished, job=job)
        delivery = self._delivered(results)
        seconds = round(time.monotonic() - self._job_started, 2)
        if delivery is None:
            self.job = None
            return self._fail(f"job {job.job_id} ({job.domain}): pages not acknowledged, offset not committed")
        committed = self._commit(record, job.job_id)
        self.summary.append(
            {
                "job_id": job.job_id,
                "domain": job.domain,
                "snapshot": job.snapshot,
                "pages": delivery.acked,
                "too_large": delivery.too_large,
                "seconds": seconds,
                "committed": committed,
                "partition": record.partition,
                "offset": record.offset,
            }
        )
        if not committed:
            self._done_uncommitted[record.topic, record.partition, record.offset] = self.summary[-1]
        self.crawler.stats.inc_value("synthweb/jobs_done")
        log.info("job %s: %s done, %d pages in %.1fs", job.job_id, job.domain, delivery.acked, seconds)
        self.job, self._job_record = None, None
        self._last_active = time.monotonic()

    def _delivered(self, results) -> JobDelivery | None:
        """The pipeline's delivery report if every message was acknowledged, else None (logged)."""
        deliveries = [value for _, value in results if isinstance(value, JobDelivery)]
        if not deliveries:
            log.error("no KafkaPagesPipeline answered: is it in ITEM_PIPELINES? (results: %r)", results)
            return None
        delivery = deliveries[0]
        if not delivery.ok:
            missing = delivery.sent - delivery.acked
            log.error("%d of %d messages not acknowledged: %s", missing, delivery.sent, delivery.error)
            return None
        return delivery

    def _commit(self, record, metadata: str) -> bool:
        from kafka import TopicPartition
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        tp = TopicPartition(record.topic, record.partition)
        try:
            self.consumer.commit({tp: OffsetAndMetadata(record.offset + 1, metadata, -1)}, timeout_ms=30_000)
        except KafkaError as exc:
            # The partition moved to another crawler meanwhile (rebalance): it will redo the job.
            log.warning("commit of %s@%d failed (%s): the job will be redelivered", tp, record.offset, exc)
            self.crawler.stats.inc_value("synthweb/kafka/commit_failed")
            return False
        for key in [k for k in self._done_uncommitted if k[:2] == (record.topic, record.partition)]:
            if key[2] < record.offset:  # a later offset's commit covers the earlier jobs of its partition
                self._done_uncommitted.pop(key)["committed"] = True
        return True

    def _fail(self, message: str) -> None:
        log.error("%s; stopping so the job is redelivered", message)
        self.failure = message
        self._close("kafka_delivery_failed")
