"""The whole distributed path on a real broker: snapshot -> crawler fleet -> Faust worker -> ClickHouse.

Every page an embedded crawl of the sample web records must end up in the store exactly once, also when a
crawler is killed mid-job and its job is redone by another (which sends some pages a second time).
"""

import json
import subprocess
import sys
from collections import Counter

import pytest

from tests.support.crawl import REPO, FleetTopics, group_lag, read_pages, start_fleet_crawler, wait_until
from tests.support.stream import WorkerProcess, end_offsets, store_query, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FLEET = {"DOWNLOAD_DELAY": 0.02, "AUTOTHROTTLE_START_DELAY": 0.02, "SYNTHWEB_MAX_QUERY_VARIANTS": 4}


def publish_snapshot(env: dict[str, str], seeds: list[str], tmp_path, name: str) -> str:
    """`synthweb snapshot --name NAME SEEDFILE`, as an operator would run it."""
    seedfile = tmp_path / f"{name}.txt"
    seedfile.write_text("\n".join(seeds) + "\n")
    cmd = [sys.executable, "-m", "synthweb.cli", "snapshot", "--name", name, str(seedfile)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["jobs"] == len(seeds)
    return result["snapshot"]


def stored_urls(db: str, snapshot: str) -> Counter:
    """How often each URL of the snapshot is in the store, stored or recorded as skipped."""
    rows = store_query(
        db,
        f"SELECT url FROM pages WHERE snapshot = '{snapshot}' "
        f"UNION ALL SELECT url FROM skipped_pages WHERE snapshot = '{snapshot}'",
    )
    return Counter(row["url"] for row in rows)


def environment(kafka, topics: FleetTopics, tmp_path, name: str) -> dict[str, str]:
    env = worker_env(kafka.bootstrap, name, f"chdb://{tmp_path / 'store'}", partitions=3, SYNTHWEB_BATCH_SIZE=16)
    env.update(topics.env)
    env["SYNTHWEB_WORKER_BATCH_SECONDS"] = "0.5"
    return env


def test_snapshot_two_crawlers_one_worker_store_every_page_once(kafka, sample_web, embedded_urls, tmp_path):
    topics = FleetTopics.create(kafka, partitions=3)
    env = environment(kafka, topics, tmp_path, "e2e")
    expected = set().union(*embedded_urls.values())
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    crawlers = [
        start_fleet_crawler(topics, FLEET, "--idle-exit", "60", log_path=tmp_path / f"crawler{i}.log") for i in range(2)
    ]
    try:
        snapshot = publish_snapshot(env, [site.root for site in sample_web.sites], tmp_path, "e2e")
        read_pages(kafka.bootstrap, topics.pages, until=lambda got: len(got) >= len(expected), timeout=180)
        wait_until(lambda: sum(group_lag(kafka.bootstrap, topics.group, topics.jobs).values()) == 0, 60, "commits")
        worker.wait_caught_up(end_offsets(kafka.bootstrap, topics.pages), timeout=180)
    finally:
        for proc in crawlers:
            proc.terminate()
        worker.stop()
    for proc in crawlers:
        proc.wait(60)
    counts = stored_urls(env["SYNTHWEB_DB"], snapshot)
    assert set(counts) == expected
    assert set(counts.values()) == {1}, [url for url, n in counts.items() if n > 1]
    # Scored and aggregated: the blog (machine-written) pages outscore the news (human) pages on average.
    sql = f"SELECT host, avg(p_synthetic) AS p FROM pages WHERE snapshot = '{snapshot}' GROUP BY host"
    scores = {row["host"]: row["p"] for row in store_query(env["SYNTHWEB_DB"], sql)}
    blog, news = sample_web.site("blog").address, sample_web.site("news").address
    assert scores[blog] > scores[news]
    # The scheduled job of a deployment clusters near-duplicates on the store the workers filled.
    dedup = subprocess.run(
        [sys.executable, "-m", "synthweb.cli", "dedup", "--db", env["SYNTHWEB_DB"]],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert dedup.returncode == 0, dedup.stderr[-2000:]
    (run,) = [r for r in map(json.loads, dedup.stdout.splitlines()) if r["snapshot"] == snapshot]
    assert run["documents"] >= 40 and run["signed"] >= 40 and not run["skipped"]
    clustered = store_query(env["SYNTHWEB_DB"], f"SELECT count() AS n FROM page_clusters WHERE snapshot = '{snapshot}'")
    assert clustered[0]["n"] == len(store_query(env["SYNTHWEB_DB"], f"SELECT DISTINCT url FROM pages WHERE snapshot = "
                                                                    f"'{snapshot}'"))  # fmt: skip


def test_killed_crawler_still_every_page_once_in_the_store(kafka, sample_web, embedded_urls, tmp_path):
    topics = FleetTopics.create(kafka, partitions=1)
    env = environment(kafka, topics, tmp_path, "e2e-kill")
    blog = sample_web.site("blog")  # Crawl-delay 0.2: slow enough to kill mid-job
    expected = embedded_urls[blog.address]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        snapshot = publish_snapshot(env, [blog.root], tmp_path, "e2e-kill")
        first = start_fleet_crawler(topics, FLEET, log_path=tmp_path / "first.log")
        read_pages(kafka.bootstrap, topics.pages, until=lambda got: len(got) >= 5, timeout=120)
        first.kill()  # SIGKILL mid-job: no flush, no commit
        first.wait(10)
        second = start_fleet_crawler(topics, FLEET, "--idle-exit", "5", log_path=tmp_path / "second.log")
        second.communicate(timeout=180)
        assert second.returncode == 0
        worker.wait_caught_up(end_offsets(kafka.bootstrap, topics.pages), timeout=180)
    finally:
        worker.stop()
    sent = Counter(m.message["url"] for m in read_pages(kafka.bootstrap, topics.pages))
    sent_twice = sum(1 for n in sent.values() if n > 1)
    assert sent_twice > 0  # the redone job resent what the killed crawler had sent
    counts = stored_urls(env["SYNTHWEB_DB"], snapshot)
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    print(f"\nkill test end to end: {len(expected)} pages, {sum(sent.values())} messages, stored once each")
