"""Pages per second the crawler fleet pushes into Kafka, for the local sample web, with 1 and 2 crawlers.

python bench/fleet_bench.py [--crawlers 1,2] [--repeat 2] [--fast]

Starts a real broker (tests.support.broker) and the sample web, then per run: fresh topics, N `synthweb crawler`
processes in one group (waited for until the group is Stable), one crawl job per site, and the clock runs
from publishing the jobs to the last page's Kafka timestamp. Default politeness unless --fast (the test
suite's DOWNLOAD_DELAY 0.02). The blog site's robots.txt has Crawl-delay 0.2 s, a floor for its job.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas.messages import CrawlJob  # noqa: E402
from synthweb.sampleweb import SampleWeb  # noqa: E402
from tests.support.broker import KafkaBroker  # noqa: E402
from tests.support.crawl import (  # noqa: E402
    FleetTopics,
    crawler_summary,
    group_lag,
    publish_jobs,
    read_pages,
    stable_group_members,
    start_fleet_crawler,
)

FAST = {"DOWNLOAD_DELAY": 0.02, "AUTOTHROTTLE_START_DELAY": 0.02}


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        time.sleep(0.1)


def one_run(broker, web, crawlers: int, settings: dict, logdir: Path) -> dict:
    topics = FleetTopics.create(broker, partitions=len(web.sites))
    procs = [
        start_fleet_crawler(topics, {**settings, "LOG_LEVEL": "INFO"}, log_path=logdir / f"c{crawlers}-{i}.log")
        for i in range(crawlers)
    ]
    try:
        wait_until(lambda: stable_group_members(broker.bootstrap, topics.group) == crawlers, 120)
        jobs = [CrawlJob(snapshot="bench", domain=s.address, seeds=[s.root], max_pages=200) for s in web.sites]
        started = time.time()
        publish_jobs(broker.bootstrap, topics.jobs, jobs)
        wait_until(lambda: sum(group_lag(broker.bootstrap, topics.group, topics.jobs).values()) == 0, 300)
    finally:
        for proc in procs:
            proc.terminate()
    summaries = [crawler_summary(proc) for proc in procs]
    messages = read_pages(broker.bootstrap, topics.pages)
    seconds = max(m.timestamp_ms for m in messages) / 1000 - started
    jobs_by_crawler = [[(j["domain"], j["pages"], j["seconds"]) for j in s["jobs"]] for s in summaries]
    return {"crawlers": crawlers, "pages": len(messages), "seconds": round(seconds, 2), "jobs": jobs_by_crawler}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crawlers", default="1,2")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--fast", action="store_true", help="DOWNLOAD_DELAY 0.02 as in the tests (Crawl-delay holds)")
    args = ap.parse_args()
    settings = FAST if args.fast else {}
    with KafkaBroker() as broker, SampleWeb() as web, tempfile.TemporaryDirectory() as tmp:
        print(f"sample web: {', '.join(f'{s.name} {s.address}' for s in web.sites)}; fast={args.fast}")
        print("| crawlers | pages | seconds | pages/s | jobs per crawler (domain, pages, s) |\n|---|---|---|---|---|")
        for _ in range(args.repeat):
            for n in (int(x) for x in args.crawlers.split(",")):
                r = one_run(broker, web, n, settings, Path(tmp))
                rate = r["pages"] / r["seconds"]
                print(f"| {n} | {r['pages']} | {r['seconds']} | {rate:.1f} | {r['jobs']} |", flush=True)


if __name__ == "__main__":
    main()
