"""The Kafka broker restarted mid-stream (stopped, down 15 s, started again on the same data): the worker and a
crawler recover by themselves; the store ends with every page exactly once, the topic with every page once.

The broker is this module's own (restarting the session's would disturb every other Kafka test).
SYNTHWEB_TEST_BROKER_DOWN_SECONDS holds it down longer (the issue's 30 s, measured outside CI's time budget).
"""

import os
import uuid

import pytest

from crawler.spiders.site import site_of
from schemas.messages import CrawlJob
from stream.samples import sample_messages
from tests.support.broker import KafkaBroker, fetch_libs, have_libs, java_executable
from tests.support.crawl import (
    FleetTopics,
    crawler_summary,
    group_lag,
    publish_jobs,
    read_pages,
    start_fleet_crawler,
    wait_until,
)
from tests.support.stream import WorkerProcess, end_offsets, produce, store_query, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
STORED = 'synthweb_worker_messages_total{outcome="stored"}'
DOWN_SECONDS = float(os.environ.get("SYNTHWEB_TEST_BROKER_DOWN_SECONDS", "15"))


@pytest.fixture(scope="module")
def broker():
    if java_executable() is None:
        pytest.skip("java not found: the kafka tests need a JDK/JRE 17+ on PATH (or JAVA_HOME)")
    with KafkaBroker(libs=None if have_libs() else fetch_libs(), start_timeout=90) as started:
        yield started


def test_a_worker_rides_out_a_broker_restart_and_stores_every_page_once(broker, tmp_path):
    n, before = 300, 200
    env = worker_env(
        broker.bootstrap, f"restart-{uuid.uuid4().hex[:6]}", f"chdb:///{tmp_path}/store",
        SYNTHWEB_WORKER_BATCH_SIZE=8, SYNTHWEB_WORKER_BATCH_SECONDS=0.2,
        SYNTHWEB_DETECTOR="ensemble",  # ~8 pages/s: the restart lands mid-stream
    )  # fmt: skip
    topic = env["SYNTHWEB_TOPIC_PAGES"]
    broker.create_topics([topic], partitions=3)
    messages = sample_messages(n, "snap-r", sites=7)
    produce(broker.bootstrap, topic, messages[:before])
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        seen = worker.wait_for(lambda m: m.get(STORED, 0) >= 40, timeout=180, what="40 stored pages")
        down = broker.restart(down_seconds=DOWN_SECONDS)
        assert seen[STORED] < before  # the broker went down mid-stream
        assert down >= DOWN_SECONDS
        produce(broker.bootstrap, topic, messages[before:])  # producers work again after the restart
        final = worker.wait_caught_up(end_offsets(broker.bootstrap, topic), timeout=300)
        assert worker.proc.poll() is None  # it recovered by itself, not by a restart
    rows = store_query(env["SYNTHWEB_DB"], "SELECT count() AS rows, uniqExact(url) AS urls FROM pages")[0]
    assert rows == {"rows": n, "urls": n}
    # Batches stored while their offsets could not be committed came back after the restart and were found in the
    # store as replays, not stored again.
    assert final[STORED] == n, final
    print({"down_seconds": round(down, 1), "stored_at_restart": seen[STORED],
           "replayed": final.get('synthweb_worker_messages_total{outcome="replayed"}', 0)})  # fmt: skip


def test_a_crawler_rides_out_a_broker_restart_mid_job(broker, sample_web, embedded_urls, tmp_path):
    topics = FleetTopics.create(broker, partitions=3)
    slow = {
        "DOWNLOAD_DELAY": 0.3,
        "AUTOTHROTTLE_START_DELAY": 0.3,
        "SYNTHWEB_MAX_QUERY_VARIANTS": 4,
        "LOG_LEVEL": "INFO",
    }
    crawler = start_fleet_crawler(topics, slow, "--idle-exit", "60", log_path=tmp_path / "crawler.log",
                                  session_seconds=20)  # fmt: skip
    try:
        jobs = [CrawlJob(snapshot="restart", domain=site_of(s.root), seeds=[s.root], max_pages=200)
                for s in sample_web.sites]  # fmt: skip
        publish_jobs(broker.bootstrap, topics.jobs, jobs)
        read_pages(broker.bootstrap, topics.pages, until=lambda got: len(got) >= 15, timeout=120)
        broker.restart(down_seconds=DOWN_SECONDS)  # mid-job: pages are being fetched and sent
        assert crawler.poll() is None
        wait_until(lambda: sum(group_lag(broker.bootstrap, topics.group, topics.jobs).values()) == 0, 180, "commits")
    finally:
        crawler.terminate()
    summary = crawler_summary(crawler)
    urls = [m.message["url"] for m in read_pages(broker.bootstrap, topics.pages)]
    # The producer buffered and retried through the outage: every page once, every job committed, no failure.
    fleet_log = [line for line in (tmp_path / "crawler.log").read_text().splitlines() if "spiders.fleet]" in line]
    assert sorted(urls) == sorted(set().union(*embedded_urls.values())), "\n".join(fleet_log)
    assert summary["failure"] == "" and all(job["committed"] for job in summary["jobs"]), summary
    assert sorted(job["domain"] for job in summary["jobs"]) == sorted(job.domain for job in jobs)
