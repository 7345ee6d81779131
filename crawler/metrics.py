"""Prometheus metrics and health endpoints for a crawler (the fleet's `synthweb crawler`; any Scrapy crawl).

A Scrapy extension, on when SYNTHWEB_CRAWLER_METRICS_PORT is set (0: off). It serves, from a daemon thread:

* `/metrics`: the crawl's Scrapy stats as Prometheus counters (jobs, pages, skips by reason, Kafka acks,
  send and commit failures, responses), the current job's domain, and the age of the reactor's heartbeat;
* `/healthz`: 200 while the Twisted reactor answers (a heartbeat every 5 s), 503 once it has been silent for
  HEALTH_SILENCE seconds (a crawler stuck in a blocking call: Kubernetes restarts it; its job is redelivered);
* `/readyz`: 200 once the spider is open (and, for the fleet, consuming jobs), 503 before and after.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scrapy import signals
from scrapy.exceptions import NotConfigured

log = logging.getLogger(__name__)

HEARTBEAT = 5.0
HEALTH_SILENCE = 60.0
# Scrapy stats -> (metric name, help); keys ending in "/" are prefixes whose rest becomes the `reason` label.
COUNTERS = {
    "item_scraped_count": ("synthweb_crawler_pages_total", "Pages handed on (stored, sent to Kafka, or skips)"),
    "synthweb/skipped/": ("synthweb_crawler_skipped_total", "Pages recorded as skipped, by reason"),
    "synthweb/kafka/acked": ("synthweb_crawler_kafka_acked_total", "Page messages acknowledged by Kafka"),
    "synthweb/kafka/send_failed": ("synthweb_crawler_kafka_send_failed_total", "Page messages Kafka refused"),
    "synthweb/kafka/commit_failed": ("synthweb_crawler_kafka_commit_failed_total", "Job offsets not committed"),
    "synthweb/kafka/too_large": ("synthweb_crawler_kafka_too_large_total", "Pages sent as too_large skips"),
    "synthweb/links_capped": ("synthweb_crawler_links_capped_total", "Pages whose links were cut to the cap"),
    "downloader/response_count": ("synthweb_crawler_responses_total", "HTTP responses received"),
    "synthweb/jobs_done": ("synthweb_crawler_jobs_total", "Crawl jobs finished"),
}


class CrawlerMetrics:
    """The extension: built from the crawler's settings, serves while the engine runs."""

    def __init__(self, crawler, port: int, host: str):
        self.crawler = crawler
        self.heartbeat = time.monotonic()
        self.ready = False
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._loop = None

    @classmethod
    def from_crawler(cls, crawler) -> CrawlerMetrics:
        port = crawler.settings.getint("SYNTHWEB_CRAWLER_METRICS_PORT", 0)
        if port <= 0:
            raise NotConfigured("SYNTHWEB_CRAWLER_METRICS_PORT is not set")
        host = crawler.settings.get("SYNTHWEB_CRAWLER_METRICS_HOST", "0.0.0.0")
        try:
            extension = cls(crawler, port, host)
        except OSError as exc:  # a taken port must not stop the crawl: no metrics, one warning
            log.warning("crawler metrics: cannot listen on %s:%d (%s); serving none", host, port, exc)
            raise NotConfigured(str(exc)) from exc
        crawler.signals.connect(extension.opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.closed, signal=signals.spider_closed)
        threading.Thread(target=extension.server.serve_forever, name="crawler-metrics", daemon=True).start()
        log.info("crawler metrics on http://%s:%d/metrics (/healthz, /readyz)", host, extension.port)
        return extension

    def opened(self, spider) -> None:
        from twisted.internet import task

        self._loop = task.LoopingCall(self._beat)
        self._loop.start(HEARTBEAT)
        self.ready = True

    def closed(self, spider, reason) -> None:
        self.ready = False
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.server.shutdown()
        self.server.server_close()

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

    def silence(self) -> float:
        return time.monotonic() - self.heartbeat

    def render(self) -> str:
        """The Prometheus text exposition of the crawl's stats."""
        stats = dict(self.crawler.stats.get_stats())
        lines = []
        for key, (name, help_text) in COUNTERS.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            if key.endswith("/"):
                found = {k[len(key) :]: v for k, v in stats.items() if k.startswith(key)}
                lines += [f'{name}{{reason="{_label(r)}"}} {float(v)}' for r, v in sorted(found.items())]
            else:
                lines.append(f"{name} {float(stats.get(key, 0))}")
        spider = self.crawler.spider
        job = getattr(spider, "job", None)  # the fleet spider's current CrawlJob
        gauges = {
            "synthweb_crawler_job_active": ("Whether a crawl job is in progress", 1.0 if job else 0.0),
            "synthweb_crawler_heartbeat_age_seconds": ("Seconds since the reactor last answered", self.silence()),
        }
        for name, (help_text, value) in gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:.3f}"]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _handler(extension: CrawlerMetrics):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                status, body, ctype = 200, extension.render(), "text/plain; version=0.0.4"
            elif path == "/healthz":
                healthy = extension.silence() < HEALTH_SILENCE
                status, body = (200, "ok\n") if healthy else (503, f"reactor silent {extension.silence():.0f}s\n")
                ctype = "text/plain"
            elif path == "/readyz":
                status, body = (200, "ready\n") if extension.ready else (503, "not ready\n")
                ctype = "text/plain"
            else:
                status, body, ctype = 404, "not found\n", "text/plain"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler
