"""Snapshots in distributed mode: publish one crawl job per site, and the schedule of snapshots.

`publish_snapshot` is what `synthweb snapshot SEEDFILE` and the Faust crontab call. The schedule
file (SYNTHWEB_SCHEDULE) is a JSON list of {"name": ..., "cron": "0 3 * * 1", "seeds": "seeds.txt"};
relative seed paths are relative to the schedule file.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas.messages import CrawlJob, encode_job
from stream.topics import KafkaUnavailable, bootstrap_servers, ensure_topics

log = logging.getLogger(__name__)

SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ScheduleError(ValueError):
    """The schedule file is missing, malformed, or names a bad cron expression or seed file."""


def snapshot_id(name: str | None = None, now: datetime | None = None) -> str:
    """`<name>-<UTC timestamp>-<4 hex>`: readable, sortable by time, unique even within one second."""
    name = name or "snapshot"
    if not SNAPSHOT_NAME.match(name):
        raise ValueError(f"bad snapshot name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    now = now or datetime.now(UTC)
    return f"{name}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def jobs_for(seeds: list[str], snapshot: str, max_pages: int) -> list[CrawlJob]:
    """One crawl job per registered domain, with that domain's seeds in their given order."""
    from crawler.extract import site_keys

    by_domain: dict[str, list[str]] = {}
    for url in seeds:
        _, domain, _ = site_keys(url)
        by_domain.setdefault(domain, []).append(url)
    return [CrawlJob(snapshot=snapshot, domain=d, seeds=urls, max_pages=max_pages) for d, urls in by_domain.items()]


def publish_snapshot(seeds: list[str], name: str | None = None, settings=None) -> tuple[str, int]:
    """Publish a new snapshot of `seeds` (URLs, domains or @FILE items) as crawl jobs; return (id, jobs).

    Jobs go to SYNTHWEB_TOPIC_JOBS keyed by domain, with acks=all and retries, and are flushed
    before returning. Raises SeedError for bad seeds and KafkaUnavailable when Kafka is not reachable
    or did not acknowledge every job.
    """
    from synthweb.config import load_settings
    from synthweb.seeds import parse_seeds

    settings = settings or load_settings()
    urls = parse_seeds(list(seeds))
    snapshot = snapshot_id(name)
    jobs = jobs_for(urls, snapshot, settings.getint("SYNTHWEB_MAX_PAGES_PER_SITE"))
    payloads = [(job.domain.encode("utf-8"), encode_job(job)) for job in jobs]  # validates every job first
    ensure_topics(settings)
    _produce(settings, settings.get("SYNTHWEB_TOPIC_JOBS"), payloads)
    log.info("published snapshot %s: %d crawl jobs", snapshot, len(jobs))
    return snapshot, len(jobs)


def _produce(settings, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    from kafka.errors import KafkaError

    from schemas.messages import kafka_producer

    servers = bootstrap_servers(settings)
    try:
        producer = kafka_producer(
            settings, "synthweb-snapshot", linger_ms=5, request_timeout_ms=15_000, max_block_ms=15_000
        )
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {','.join(servers)}: {type(exc).__name__}: {exc}") from exc
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in payloads]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)  # raises if the broker did not acknowledge this job
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka did not accept the crawl jobs: {type(exc).__name__}: {exc}") from exc
    finally:
        producer.close(timeout=10)


@dataclass(frozen=True)
class ScheduledSnapshot:
    """One entry of the schedule file."""

    name: str
    cron: str
    seeds: Path


def load_schedule(path: str | Path) -> list[ScheduledSnapshot]:
    """Parse and check a schedule file; ScheduleError names the file, the entry and what is wrong."""
    from croniter import croniter

    from synthweb.seeds import SeedError, parse_seeds

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"cannot read schedule {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, list):
        raise ScheduleError(f"{path}: expected a JSON list of {{name, cron, seeds}} objects")
    entries: list[ScheduledSnapshot] = []
    for number, item in enumerate(data, 1):
        where = f"{path}: entry {number}"
        if not isinstance(item, dict):
            raise ScheduleError(f"{where}: expected an object with name, cron, seeds")
        missing = [k for k in ("name", "cron", "seeds") if not isinstance(item.get(k), str) or not item[k].strip()]
        if missing:
            raise ScheduleError(f"{where}: missing or empty {', '.join(missing)}")
        extra = sorted(set(item) - {"name", "cron", "seeds"})
        if extra:
            raise ScheduleError(f"{where}: unknown keys {', '.join(extra)}")
        name = item["name"].strip()
        if not SNAPSHOT_NAME.match(name):
            raise ScheduleError(f"{where}: bad name {name!r} (letters, digits, '.', '_', '-')")
        cron = " ".join(item["cron"].split())
        if len(cron.split()) != 5 or not croniter.is_valid(cron):
            raise ScheduleError(f"{where}: bad cron expression {item['cron']!r} (five fields, e.g. '0 3 * * 1')")
        seeds = Path(item["seeds"])
        seeds = seeds if seeds.is_absolute() else path.parent / seeds
        try:
            parse_seeds([f"@{seeds}"])
        except SeedError as exc:
            raise ScheduleError(f"{where}: {exc}") from exc
        entries.append(ScheduledSnapshot(name=name, cron=cron, seeds=seeds))
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScheduleError(f"{path}: duplicate names {', '.join(duplicates)}")
    return entries
