"""The Faust app of distributed mode: `faust -A stream.app worker -l info` (or `synthweb worker`).

An agent consumes `pages.raw` in batches (`take_events`, so each message's partition and offset
are known), runs the SYNTHWEB_STAGES on them in one dedicated thread (stream/worker.py does the
exactly-once bookkeeping) and only then lets the loop move on. Faust's take_events acks a
batch's events when the agent asks for the next batch, and the consumer commits only acked
offsets, so a worker killed before an insert has those messages redelivered. Undecodable or
invalid messages go to `pages.dead` once each (stream/dead_letters.py), before the batch is
acked. Metrics: GET /metrics.
A leader-only crontab publishes the snapshots of the SYNTHWEB_SCHEDULE file.

Everything is configured from crawler/settings.py (environment variables override it).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

import faust

from stream.metrics import WorkerMetrics
from stream.snapshots import load_schedule, publish_snapshot
from stream.topics import bootstrap_servers, ensure_topics
from stream.worker import BatchProcessor, BatchResult, RawMessage
from synthweb.config import load_settings

log = logging.getLogger(__name__)


class Worker:
    """The state one worker process shares between the agent, the signals and the web view."""

    def __init__(self, settings):
        self.settings = settings
        self.metrics = WorkerMetrics()
        # One thread for every stage call: chDB and ONNX sessions stay on it, the event loop stays free.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synthweb-stages")
        self.processor: BatchProcessor | None = None
        self.positions: dict[tuple[str, int], int] = {}

    def open(self) -> None:
        """Create missing topics and build the stage pipeline (opens and migrates the store)."""
        ensure_topics(self.settings)
        self.processor = self.executor.submit(BatchProcessor.from_settings, self.settings).result()
        atexit.register(self.close)

    def close(self) -> None:
        processor, self.processor = self.processor, None
        if processor is not None:
            try:
                processor.close()
            except Exception as exc:  # exiting anyway
                log.warning("closing the stages failed: %s", exc)

    async def handle(self, events) -> None:
        """Process one batch of events; returns only when every message is stored or dead-lettered."""
        started = time.perf_counter()
        if self.processor is None:  # built in on_worker_init; built here when the agent runs elsewhere
            await asyncio.get_running_loop().run_in_executor(None, self.open)
        messages = [
            RawMessage(e.message.topic, e.message.partition, e.message.offset, _as_bytes(e.value), _as_bytes(e.key))
            for e in events
        ]
        job = asyncio.get_running_loop().run_in_executor(self.executor, self.processor.process, messages)
        try:
            result: BatchResult = await asyncio.shield(job)
        except asyncio.CancelledError:
            # The worker is stopping. Faust acks the batch when the take_events generator is closed,
            # and commits acked offsets on the way out: let the batch finish so only stored ones are.
            await asyncio.wait([job])
            raise
        self._record(messages, result, time.perf_counter() - started)
        log.info("batch %s: %s in %.2fs", _ranges(messages), result.outcomes, time.perf_counter() - started)

    def _record(self, messages: list[RawMessage], result: BatchResult, seconds: float) -> None:
        m = self.metrics
        m.batch_size.observe(len(messages))
        m.batch_seconds.observe(seconds)
        for outcome, n in result.outcomes.items():
            m.messages.labels(outcome).inc(n)
            if outcome in ("stored", "skipped"):
                m.pages.labels(outcome).inc(n)
        for dead in result.dead:
            m.dead_letters.labels(dead.reason).inc()
        for stage, stage_seconds in result.timings.items():
            m.stage_seconds.labels(stage).observe(stage_seconds)
        if result.retries:
            m.retries.inc(result.retries)
        for message in messages:
            key = (message.topic, message.partition)
            self.positions[key] = max(self.positions.get(key, 0), message.offset + 1)
            m.position.labels(message.topic, str(message.partition)).set(self.positions[key])

    async def update_lag(self, app: faust.App) -> None:
        """Refresh the position and lag gauges of the assigned partitions (on each /metrics scrape)."""
        try:
            consumer = app.consumer
            topic = self.settings.get("SYNTHWEB_TOPIC_PAGES")
            assigned = sorted(tp for tp in consumer.assignment() if tp.topic == topic)
            ends = await consumer.highwaters(*assigned) if assigned else {}
        except Exception as exc:  # consumer not started or rebalancing: keep the last values
            log.debug("lag not available: %s", exc)
            return
        # Not consumer.position(): aiokafka's fetch position runs ahead of processing (prefetch).
        # A partition this worker has not processed from yet is where its committed offset says
        # (Faust's _committed_offset: the next offset, as in Kafka; everything below is stored).
        committed = getattr(consumer, "_committed_offset", {})
        for tp in assigned:
            labels = (tp.topic, str(tp.partition))
            position = self.positions.get((tp.topic, tp.partition))
            if position is None:
                position = committed.get(tp) or 0
            self.metrics.position.labels(*labels).set(position)
            self.metrics.lag.labels(*labels).set(max(0, (ends.get(tp) or 0) - position))

    def failing_seconds(self) -> float:
        """How long the batch in hand has kept failing (0 while batches go through)."""
        since = self.processor.failing_since if self.processor is not None else None
        return time.monotonic() - since if since is not None else 0.0

    def forget_partitions(self, revoked) -> None:
        """After a rebalance another worker may own and advance these partitions."""
        for tp in revoked:
            self.positions.pop((tp.topic, tp.partition), None)
            for gauge in (self.metrics.position, self.metrics.lag):
                try:
                    gauge.remove(tp.topic, str(tp.partition))
                except KeyError:
                    pass
        if self.processor is not None:
            self.processor.forget_offsets()


def _ranges(messages: list[RawMessage]) -> str:
    spans: dict[str, list[int]] = {}
    for m in messages:
        lo, hi = spans.get(m.source, [m.offset, m.offset])
        spans[m.source] = [min(lo, m.offset), max(hi, m.offset)]
    return " ".join(f"{source}:{lo}-{hi}" for source, (lo, hi) in sorted(spans.items()))


def _as_bytes(value) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def create_app(settings=None) -> faust.App:
    """The Faust app, configured from the one settings module."""
    settings = settings or load_settings()
    max_bytes = settings.getint("SYNTHWEB_MAX_MESSAGE_BYTES")
    app = faust.App(
        settings.get("SYNTHWEB_WORKER_GROUP"),
        broker=[f"kafka://{server}" for server in bootstrap_servers(settings)],
        web_port=settings.getint("SYNTHWEB_WORKER_WEB_PORT"),
        web_bind=settings.get("SYNTHWEB_WORKER_WEB_BIND"),
        web_host=settings.get("SYNTHWEB_WORKER_WEB_BIND"),
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        consumer_max_fetch_size=max_bytes,
        topic_partitions=settings.getint("SYNTHWEB_TOPIC_PARTITIONS"),
        store="memory://",
        datadir=settings.get("SYNTHWEB_WORKER_DATADIR"),
        autodiscover=False,
        timezone=UTC,
        # A crashed worker's partitions go to the others after this long without heartbeats.
        broker_session_timeout=settings.getfloat("SYNTHWEB_WORKER_SESSION_TIMEOUT"),
        broker_heartbeat_interval=min(3.0, settings.getfloat("SYNTHWEB_WORKER_SESSION_TIMEOUT") / 3),
    )
    worker = Worker(settings)
    app.synthweb_worker = worker
    app.synthweb_snapshots = {}  # schedule entry name -> the coroutine function its crontab runs
    pages_topic = app.topic(settings.get("SYNTHWEB_TOPIC_PAGES"), key_type=bytes, value_type=bytes)
    batch_size = settings.getint("SYNTHWEB_WORKER_BATCH_SIZE")
    batch_seconds = settings.getfloat("SYNTHWEB_WORKER_BATCH_SECONDS")

    @app.agent(pages_topic, name="synthweb.pages")
    async def process_pages(stream):
        # take_events disables auto-acks and acks the yielded events when the loop asks for the
        # next batch: the offsets of a batch are committed only after handle() returned.
        async for events in stream.take_events(batch_size, within=batch_seconds):
            await worker.handle(events)

    @app.on_worker_init.connect
    def _open(sender, **kwargs):
        worker.open()

    @app.on_partitions_revoked.connect
    async def _revoked(sender, revoked, **kwargs):
        worker.forget_partitions(revoked)

    @app.page("/metrics")
    async def metrics_view(web, request):
        await worker.update_lag(app)
        worker.metrics.failing.set(worker.failing_seconds())
        return web.bytes(worker.metrics.render(), content_type="text/plain")

    @app.page("/healthz")
    async def health_view(web, request):
        # The event loop answers: alive. A failing store is no reason to restart (it would not help).
        return web.text("ok\n")

    @app.page("/readyz")
    async def ready_view(web, request):
        failing = worker.failing_seconds()
        if failing:
            return web.text(f"not ready: batches failing for {failing:.0f}s (store down?)\n", status=503)
        return web.text("ready\n")

    schedule = settings.get("SYNTHWEB_SCHEDULE")
    for entry in load_schedule(schedule) if schedule else []:
        _schedule_snapshot(app, settings, entry)
    return app


def _schedule_snapshot(app: faust.App, settings, entry) -> None:
    """A leader-only crontab: several workers, one publication per tick."""

    async def publish() -> None:
        try:
            snapshot, jobs = await asyncio.get_running_loop().run_in_executor(
                None, publish_snapshot, [f"@{entry.seeds}"], entry.name, settings
            )
            log.info("scheduled snapshot %s: published %s with %d crawl jobs", entry.name, snapshot, jobs)
        except Exception as exc:  # a failed tick is logged; the next one tries again
            log.error("scheduled snapshot %s failed: %s", entry.name, exc)

    publish.__name__ = publish.__qualname__ = f"snapshot_{entry.name}"
    app.crontab(entry.cron, on_leader=True, timezone=UTC)(publish)
    app.synthweb_snapshots[entry.name] = publish


def __getattr__(name: str):
    """`stream.app.app`, the app `faust -A stream.app` runs: built from the settings on first use, not on import."""
    if name == "app":
        globals()["app"] = app = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
