"""The crawler fleet over a real Kafka broker: crawl jobs from a consumer group, pages to pages.raw."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import date
from urllib.parse import urlsplit

import pytest
from kafka import KafkaProducer

from crawler.spiders.site import site_of
from schemas.messages import CrawlJob, decode_dead_letter
from stream.metrics import parse_metrics
from synthweb.sampleweb import Article, SampleWeb, Site
from tests.support.broker import free_port
from tests.support.crawl import (
    REPO,
    FleetTopics,
    assignment_events,
    crawler_summary,
    group_lag,
    held_partitions,
    publish_jobs,
    read_pages,
    stable_group_members,
    start_fleet_crawler,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# The same politeness shortcuts as tests/crawler/test_crawl_sampleweb.py (Crawl-delay still holds).
FAST = {"DOWNLOAD_DELAY": 0.02, "AUTOTHROTTLE_START_DELAY": 0.02, "SYNTHWEB_MAX_QUERY_VARIANTS": 4}
FLEET = {**FAST, "LOG_LEVEL": "INFO"}


def scrape(port: int) -> dict:
    """A crawler's /metrics as {name: value} (unlabelled series), plus the status of /healthz and /readyz."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {k: v for k, v in parse_metrics(text).items() if "{" not in k}
    for path in ("healthz", "readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=10) as response:
            values[path] = response.status
    return values


def stop(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()


def jobs_for(sites, snapshot: str, max_pages: int = 200) -> list[CrawlJob]:
    return [CrawlJob(snapshot=snapshot, domain=site_of(s.root), seeds=[s.root], max_pages=max_pages) for s in sites]


def test_two_crawlers_share_the_sample_web(kafka, sample_web, embedded_urls, tmp_path):
    topics = FleetTopics.create(kafka, partitions=3)
    logs = [tmp_path / f"crawler{i}.log" for i in range(2)]
    # A long session: no crawler is killed here, and a CPU-starved one must not be evicted for a slow heartbeat.
    ports = [free_port() for _ in logs]  # each crawler serves /metrics, /healthz, /readyz (crawler.metrics)
    procs = [
        start_fleet_crawler(topics, {**FLEET, "SYNTHWEB_CRAWLER_METRICS_PORT": port, "SYNTHWEB_CRAWLER_METRICS_HOST":
                            "127.0.0.1"}, "--idle-exit", "90", log_path=log, session_seconds=20)
        for log, port in zip(logs, ports, strict=True)
    ]  # fmt: skip
    jobs = jobs_for(sample_web.sites, "fleet-two")
    try:
        # Both must hold partitions before the jobs go out; a stuck join is evicted and rejoins (up to ~90 s).
        wait_until(
            lambda: stable_group_members(kafka.bootstrap, topics.group) == 2 and all(map(held_partitions, logs)),
            150,
            "both crawlers holding job partitions",
        )
        rebalances_before = [assignment_events(log) for log in logs]
        publish_jobs(kafka.bootstrap, topics.jobs, jobs)  # one job per partition: the range assignor splits them
        expected = sum(len(urls) for urls in embedded_urls.values())
        read_pages(kafka.bootstrap, topics.pages, until=lambda got: len(got) >= expected, timeout=120)
        wait_until(lambda: sum(group_lag(kafka.bootstrap, topics.group, topics.jobs).values()) == 0, 30, "commits")
        scraped = [scrape(port) for port in ports]
        rebalanced = [assignment_events(log) for log in logs] != rebalances_before  # before the shutdown revokes
    finally:
        stop(procs)  # SIGTERM: a clean shutdown that prints the summary
    summaries = [crawler_summary(proc) for proc in procs]
    messages = read_pages(kafka.bootstrap, topics.pages)
    # The fleet's metrics count what it did: jobs and acknowledged pages, summed over the crawlers.
    assert sum(m["synthweb_crawler_jobs_total"] for m in scraped) == len(jobs)
    assert sum(m["synthweb_crawler_kafka_acked_total"] for m in scraped) == expected
    assert all(m["healthz"] == 200 and m["readyz"] == 200 for m in scraped), scraped

    # Every page an embedded crawl finds, each exactly once, keyed by its site and stamped with the snapshot.
    by_site = defaultdict(list)
    for m in messages:
        by_site[m.key].append(m.message["url"])
        assert m.key == site_of(m.message["url"])
        assert m.message["snapshot"] == "fleet-two"
    assert {site: set(urls) for site, urls in by_site.items()} == embedded_urls
    assert len(messages) == sum(len(urls) for urls in embedded_urls.values())
    # Skipped fetches travel too, with their reason and no HTML.
    big = next(m.message for m in messages if m.message["url"].endswith("/big.html"))
    assert (big["skip"], big["html"]) == ("too_large", "")
    report = next(m.message for m in messages if m.message["url"].endswith("/report.html"))
    assert report["skip"] == "binary"

    # Each site was crawled by exactly one crawler, under its job's id, and each job was committed once.
    job_of_domain = {job.domain: job.job_id for job in jobs}
    for site in by_site:
        assert {m.message["job_id"] for m in messages if m.key == site} == {job_of_domain[site]}
    done = [job for summary in summaries for job in summary["jobs"]]
    assert sorted(j["job_id"] for j in done) == sorted(job_of_domain.values())
    assert all(j["committed"] for j in done)
    # Both crawlers took part, unless a rebalance during the crawl (a starved heartbeat on two busy cores) handed
    # one of them every partition: then only the exactly-once checks above and below hold.
    if not rebalanced:
        assert all(summary["jobs"] for summary in summaries), summaries
    for j in done:
        assert j["pages"] == len(by_site[j["domain"]])
    assert set(group_lag(kafka.bootstrap, topics.group, topics.jobs).values()) == {0}
    assert all(s["failure"] == "" and s["finish_reason"] == "shutdown" for s in summaries), summaries


def test_killed_crawler_job_redelivered(kafka, sample_web, embedded_urls, tmp_path):
    topics = FleetTopics.create(kafka, partitions=1)
    blog = sample_web.site("blog")  # Crawl-delay 0.2: slow enough to kill mid-job
    [job] = jobs_for([blog], "fleet-kill")
    publish_jobs(kafka.bootstrap, topics.jobs, [job])
    first = start_fleet_crawler(topics, FLEET, log_path=tmp_path / "first.log")
    try:
        before = read_pages(kafka.bootstrap, topics.pages, until=lambda got: len(got) >= 5, timeout=90)
        first.kill()  # SIGKILL mid-job: no flush, no commit, no leaving the group
        first.wait(10)
    finally:
        stop([first])
    expected = embedded_urls[blog.address]
    assert 5 <= len(before) < len(expected)
    assert group_lag(kafka.bootstrap, topics.group, topics.jobs) == {0: 1}

    second = start_fleet_crawler(topics, FLEET, "--idle-exit", "5", log_path=tmp_path / "second.log")
    try:
        summary = crawler_summary(second, timeout=120)
    finally:
        stop([second])
    messages = read_pages(kafka.bootstrap, topics.pages)
    urls = Counter(m.message["url"] for m in messages)
    assert set(urls) == expected  # nothing lost
    assert {m.message["job_id"] for m in messages} == {job.job_id}
    assert summary["finish_reason"] == "idle_exit"
    [done] = summary["jobs"]
    assert (done["job_id"], done["committed"], done["pages"]) == (job.job_id, True, len(expected))
    assert group_lag(kafka.bootstrap, topics.group, topics.jobs) == {0: 0}
    sent_twice = sum(1 for n in urls.values() if n > 1)
    assert sent_twice == len(messages) - len(expected)  # the redone job sends each page once more at most
    print(f"\nkill test: {len(expected)} pages expected, {len(messages)} messages, {sent_twice} URLs sent twice")


def test_a_crawler_fenced_mid_job_does_not_crawl_the_job_again(kafka, sample_web, embedded_urls, tmp_path):
    # Frozen past its session (a stalled VM, a long GC, a broker restart under load), the crawler is dropped
    # from the group: finishing the job, its commit fails, and on rejoining the job comes back to it.
    topics = FleetTopics.create(kafka, partitions=1)
    blog = sample_web.site("blog")  # Crawl-delay 0.2: slow enough to freeze mid-job
    [job] = jobs_for([blog], "fleet-fenced")
    publish_jobs(kafka.bootstrap, topics.jobs, [job])
    crawler = start_fleet_crawler(topics, FLEET, "--idle-exit", "10", log_path=tmp_path / "crawler.log")
    try:
        before = read_pages(kafka.bootstrap, topics.pages, until=lambda got: len(got) >= 5, timeout=90)
        crawler.send_signal(signal.SIGSTOP)
        time.sleep(3 * 6)  # three sessions (start_fleet_crawler's 6 s): the broker drops the member
        crawler.send_signal(signal.SIGCONT)
        summary = crawler_summary(crawler, timeout=180)
    finally:
        crawler.send_signal(signal.SIGCONT)
        stop([crawler])
    expected = embedded_urls[blog.address]
    assert 5 <= len(before) < len(expected)
    log = (tmp_path / "crawler.log").read_text()
    assert "already crawled" in log  # the redelivery happened and was recognised
    urls = Counter(m.message["url"] for m in read_pages(kafka.bootstrap, topics.pages))
    assert urls == Counter(expected)  # every page once: the job was not crawled a second time
    [done] = summary["jobs"]
    assert (done["job_id"], done["committed"], done["pages"]) == (job.job_id, True, len(expected))
    assert group_lag(kafka.bootstrap, topics.group, topics.jobs) == {0: 0}


def _big_site() -> Site:
    words = " ".join(f"word{i % 97}" for i in range(30_000))  # ~200 kB of article HTML
    day = date(2024, 5, 1)
    big = Article("/articles/big.html", "big", "human", "", "A very long article", words, day)
    small = Article("/articles/small.html", "small", "human", "", "A short article", "Short text. " * 30, day)
    return Site("huge", "127.0.0.5", articles=[big, small])


def test_oversized_page_sent_as_skip_and_bad_job_dead_lettered(kafka, tmp_path):
    topics = FleetTopics.create(kafka, partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    producer.send(topics.jobs, b"not a crawl job")  # before the good job on the same partition
    producer.close()
    with SampleWeb([_big_site()]) as web:
        [job] = jobs_for(web.sites, "fleet-big")
        publish_jobs(kafka.bootstrap, topics.jobs, [job])
        # The Scrapy entry point this time; it stops itself after its (good) job.
        cmd = [sys.executable, "-m", "scrapy", "crawl", "fleet", "-a", "max_jobs=1", "-a", "idle_exit=60"]
        settings = {**FAST, "SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True, "SYNTHWEB_MAX_MESSAGE_BYTES": 65536}
        cmd += [arg for name, value in settings.items() for arg in ("-s", f"{name}={value}")]
        env = {**os.environ, **topics.env, "SYNTHWEB_CRAWLER_SESSION_SECONDS": "6", "PYTHONPATH": str(REPO)}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    (tmp_path / "crawler.log").write_text(proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_path = {urlsplit(m.message["url"]).path: m.message for m in read_pages(kafka.bootstrap, topics.pages)}
    assert "/articles/big.html" in by_path, proc.stderr[-3000:]
    big = by_path["/articles/big.html"]
    assert (big["skip"], big["html"], big["status"]) == ("too_large", "", 200)
    assert "SYNTHWEB_MAX_MESSAGE_BYTES=65536" in big["skip_detail"]
    assert by_path["/articles/small.html"]["skip"] == "" and "Short text." in by_path["/articles/small.html"]["html"]
    assert by_path["/"]["skip"] == ""
    [dead] = read_pages(kafka.bootstrap, topics.dead, schema="dead_letter.v1")
    assert (dead.message["reason"], dead.message["topic"], dead.message["offset"]) == ("undecodable", topics.jobs, 0)
    assert decode_dead_letter(json.dumps(dead.message).encode())["original"] == b"not a crawl job"
    assert group_lag(kafka.bootstrap, topics.group, topics.jobs) == {0: 0}  # both jobs committed


def test_undelivered_pages_leave_the_job_uncommitted(kafka, sample_web, tmp_path):
    topics = FleetTopics.create(kafka, partitions=1, max_message_bytes=512)  # the broker refuses every page
    publish_jobs(kafka.bootstrap, topics.jobs, jobs_for([sample_web.site("mixed")], "fleet-fail"))
    proc = start_fleet_crawler(topics, FLEET, "--idle-exit", "30", log_path=tmp_path / "crawler.log")
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        stop([proc])
    log = (tmp_path / "crawler.log").read_text()
    assert proc.returncode == 1, log[-3000:]
    assert "not acknowledged" in log
    assert group_lag(kafka.bootstrap, topics.group, topics.jobs) == {0: 1}  # redelivered to the next crawler


def test_scrapy_crawl_fleet_exits_1_when_pages_are_undelivered(kafka, sample_web, tmp_path):
    topics = FleetTopics.create(kafka, partitions=1, max_message_bytes=512)  # the broker refuses every page
    publish_jobs(kafka.bootstrap, topics.jobs, jobs_for([sample_web.site("mixed")], "fleet-fail-scrapy"))
    cmd = [sys.executable, "-m", "scrapy", "crawl", "fleet", "-a", "max_jobs=1", "-a", "idle_exit=30"]
    settings = {**FLEET, "SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True}
    cmd += [arg for name, value in settings.items() for arg in ("-s", f"{name}={value}")]
    env = {**os.environ, **topics.env, "SYNTHWEB_CRAWLER_SESSION_SECONDS": "6", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    (tmp_path / "crawler.log").write_text(proc.stderr)
    assert proc.returncode == 1, proc.stderr[-3000:]  # Scrapy's own command said 0 here
    assert "not acknowledged" in proc.stderr
    assert group_lag(kafka.bootstrap, topics.group, topics.jobs) == {0: 1}  # left for the next crawler
