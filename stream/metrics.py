"""Prometheus metrics of a Faust worker, served as text at GET /metrics on the Faust web server.

Rates come from counters (`rate(synthweb_worker_pages_total[1m])` is pages/s). Tests poll
`synthweb_worker_position` against the topic's end offsets to know a worker has caught up.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class WorkerMetrics:
    """The worker's metrics in their own registry (several apps in one test process stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pages = Counter(
            "synthweb_worker_pages",
            "Pages written to the store (stored or recorded as skipped)",
            ["outcome"],
            registry=r,
        )
        self.messages = Counter(
            "synthweb_worker_messages",
            "pages.raw messages handled, by outcome: stored, skipped, duplicate (snapshot+url already stored), "
            "replayed (offset at or below the stored high-water mark), dead",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "synthweb_worker_dead_letters", "Messages sent to pages.dead", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "synthweb_worker_batch_size", "Messages per take_events batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            "synthweb_worker_stage_seconds",
            "Seconds per batch spent in each stage (score = scoring latency, store = insert latency)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "synthweb_worker_batch_seconds",
            "Seconds to handle one batch end to end",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter("synthweb_worker_batch_retries", "Batches retried after a failure", registry=r)
        self.failing = Gauge(
            "synthweb_worker_failing_seconds",
            "Seconds the batch in hand has kept failing (the store refusing writes, say); 0 while batches go through",
            registry=r,
        )
        self.position = Gauge(
            "synthweb_worker_position",
            "Next offset to handle per partition this worker processed (everything below is stored or dead-lettered)",
            ["topic", "partition"],
            registry=r,
        )
        self.lag = Gauge(
            "synthweb_worker_lag",
            "Consumer lag per assigned partition (end offset - position)",
            ["topic", "partition"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}; for tests and the bench."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values
