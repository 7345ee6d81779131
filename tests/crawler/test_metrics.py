"""The crawler's /metrics, /healthz and /readyz (crawler.metrics), served from a thread beside the crawl."""

import socket
import time
import urllib.error
import urllib.request

import pytest
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from crawler import metrics
from crawler.metrics import CrawlerMetrics
from tests.support.broker import free_port


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served():
    crawler = get_crawler(Spider, {"SYNTHWEB_CRAWLER_METRICS_PORT": free_port(), "SYNTHWEB_CRAWLER_METRICS_HOST":
                                   "127.0.0.1"})  # fmt: skip
    extension = CrawlerMetrics.from_crawler(crawler)
    yield crawler, extension
    extension.server.shutdown()
    extension.server.server_close()


def test_stats_are_served_as_prometheus_counters(served):
    crawler, extension = served
    crawler.stats.set_value("item_scraped_count", 12)
    crawler.stats.set_value("synthweb/skipped/too_large", 2)
    crawler.stats.set_value('synthweb/skipped/odd"reason', 1)
    crawler.stats.set_value("synthweb/jobs_done", 3)
    status, text = get(extension.port, "/metrics")
    assert status == 200
    assert "synthweb_crawler_pages_total 12.0" in text and "synthweb_crawler_jobs_total 3.0" in text
    assert 'synthweb_crawler_skipped_total{reason="too_large"} 2.0' in text
    assert 'synthweb_crawler_skipped_total{reason="odd\\"reason"} 1.0' in text  # labels escaped
    assert "synthweb_crawler_kafka_send_failed_total 0.0" in text and "synthweb_crawler_job_active 0.000" in text


def test_ready_once_open_and_unhealthy_when_the_reactor_goes_silent(served):
    _, extension = served
    assert get(extension.port, "/readyz")[0] == 503  # the spider is not open yet
    assert get(extension.port, "/healthz") == (200, "ok\n")
    extension.ready = True
    assert get(extension.port, "/readyz")[0] == 200
    extension.heartbeat = time.monotonic() - metrics.HEALTH_SILENCE - 1  # a crawler stuck in a blocking call
    status, text = get(extension.port, "/healthz")
    assert status == 503 and "silent" in text
    assert get(extension.port, "/nothing")[0] == 404


def test_off_unless_a_port_is_set_and_a_taken_port_does_not_stop_the_crawl():
    with pytest.raises(NotConfigured):
        CrawlerMetrics.from_crawler(get_crawler(Spider, {}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = {
            "SYNTHWEB_CRAWLER_METRICS_PORT": taken.getsockname()[1],
            "SYNTHWEB_CRAWLER_METRICS_HOST": "127.0.0.1",
        }
        with pytest.raises(NotConfigured, match="in use"):
            CrawlerMetrics.from_crawler(get_crawler(Spider, settings))
