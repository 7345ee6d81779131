"""Test helpers: a stage that collects pages to a file, and a crawl in a subprocess.

A Twisted reactor cannot restart, so every test crawl runs in its own process:

    summary, pages = crawl_in_subprocess(seeds, {"SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True})

Fleet mode (a real broker from tests.support.broker): `FleetTopics` makes unique topics and a group,
`start_fleet_crawler` starts `synthweb crawler` on them, `publish_jobs` and `read_pages` talk to Kafka.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthweb.pipeline import NotConfigured, Page, Stage

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = "tests.support.crawl.CollectorStage"


class CollectorStage(Stage):
    """Appends every page (as JSON) to the file named by SYNTHWEB_COLLECT_PATH."""

    name = "collect"

    def __init__(self, path: str):
        self.path = path

    @classmethod
    def from_settings(cls, settings) -> CollectorStage:
        path = settings.get("SYNTHWEB_COLLECT_PATH")
        if not path:
            raise NotConfigured("SYNTHWEB_COLLECT_PATH not set")
        return cls(path)

    def run(self, pages: Iterable[Page]) -> Iterator[Page]:
        with open(self.path, "a", encoding="utf-8") as f:
            for page in pages:
                f.write(json.dumps(page.to_dict(), default=str, ensure_ascii=False) + "\n")
                yield page


def crawl_in_subprocess(
    seeds: list[str], settings: dict[str, Any] | None = None, timeout: float = 120
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Crawl `seeds` with ExtractStage + CollectorStage in a fresh Python; return (summary, pages)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pages.jsonl"
        overrides = {
            "SYNTHWEB_STAGES": ["crawler.extract.ExtractStage", COLLECTOR],
            "SYNTHWEB_COLLECT_PATH": str(out),
            "LOG_LEVEL": "ERROR",
            **(settings or {}),
        }
        env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "crawler.settings"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        proc = subprocess.run(
            [sys.executable, "-m", "tests.support.crawl", json.dumps({"seeds": seeds, "settings": overrides})],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"crawl failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        pages = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        return summary, pages


@dataclass
class FleetTopics:
    """Fresh topic names and a consumer group on a broker, as the env vars a crawler reads."""

    bootstrap: str
    jobs: str
    pages: str
    dead: str
    group: str

    @classmethod
    def create(cls, broker, partitions: int = 3, max_message_bytes: int = 12 * 1024 * 1024 + 65536) -> FleetTopics:
        tag = uuid.uuid4().hex[:8]
        topics = cls(broker.bootstrap, f"jobs-{tag}", f"pages-{tag}", f"dead-{tag}", f"crawlers-{tag}")
        broker.create_topics([topics.jobs], partitions=partitions)
        configs = {"max.message.bytes": str(max_message_bytes)}
        broker.create_topics([topics.pages], partitions=partitions, configs=configs)
        broker.create_topics([topics.dead], partitions=1)
        return topics

    @property
    def env(self) -> dict[str, str]:
        return {
            "SYNTHWEB_KAFKA_BOOTSTRAP": self.bootstrap,
            "SYNTHWEB_TOPIC_JOBS": self.jobs,
            "SYNTHWEB_TOPIC_PAGES": self.pages,
            "SYNTHWEB_TOPIC_DEAD": self.dead,
            "SYNTHWEB_CRAWLER_GROUP": self.group,
        }


def _subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "crawler.settings", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def start_fleet_crawler(
    topics: FleetTopics, settings: dict[str, Any] | None = None, *args: str, log_path: Path, session_seconds: float = 6
) -> subprocess.Popen:
    """Start `synthweb crawler --allow-private-networks ARGS` in a subprocess; its log goes to `log_path`.

    stdout carries the summary JSON line printed at exit.
    """
    cmd = [sys.executable, "-m", "synthweb.cli", "crawler", "--allow-private-networks", *args]
    for name, value in (settings or {}).items():
        cmd += ["-s", f"{name}={value}"]
    env = _subprocess_env({**topics.env, "SYNTHWEB_CRAWLER_SESSION_SECONDS": str(session_seconds)})
    log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it; closed with the Popen below
    try:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log)
    finally:
        log.close()


def crawler_summary(proc: subprocess.Popen, timeout: float = 120) -> dict[str, Any]:
    """Wait for a crawler started by `start_fleet_crawler` and return its summary (raises if it failed)."""
    out, _ = proc.communicate(timeout=timeout)
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"crawler exited {proc.returncode}: {out.decode()[-2000:]}")
    return json.loads(lines[-1])


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll `condition()` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def publish_jobs(bootstrap: str, topic: str, jobs: list, spread: bool = True) -> None:
    """Publish CrawlJobs keyed by domain; `spread` puts job i on partition i (mod partitions)."""
    from kafka import KafkaProducer

    from schemas.messages import encode_job

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        partitions = sorted(producer.partitions_for(topic))
        for i, job in enumerate(jobs):
            partition = partitions[i % len(partitions)] if spread else None
            producer.send(topic, key=job.domain.encode(), value=encode_job(job), partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


@dataclass
class RawMessage:
    key: str
    message: dict  # the JSON message validated against its schema (for pages.raw: job_id included)
    partition: int
    offset: int
    timestamp_ms: int


def read_pages(
    bootstrap: str, topic: str, until=None, timeout: float = 60, schema: str = "raw_page.v1"
) -> list[RawMessage]:
    """Read `topic` from the start until `until(messages)` is true (or `timeout` s pass); validate every message.

    Without `until`, read up to the end offsets as they are when called.
    """
    from kafka import KafkaConsumer, TopicPartition

    from schemas.messages import validator

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        if until is None:
            total = sum(consumer.end_offsets(parts).values())

            def until(messages):
                return len(messages) >= total

        got: list[RawMessage] = []
        deadline = time.monotonic() + timeout
        while not until(got) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    message = json.loads(r.value)
                    validator(schema).validate(message)
                    got.append(RawMessage((r.key or b"").decode(), message, r.partition, r.offset, r.timestamp))
        return got
    finally:
        consumer.close()


def group_lag(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per partition of `topic`: end offset minus the group's committed offset (end offset if none)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        deadline = time.monotonic() + 60
        while True:
            try:
                committed = admin.list_group_offsets({group: None}).get(group, {})
                break
            except KafkaError as exc:
                # Just after a broker restart the group coordinator is still loading its offsets
                # (CoordinatorLoadInProgress, a retriable error; CI hit it on a loaded machine): ask again.
                if not exc.retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        ends = consumer.end_offsets(parts)
        return {tp.partition: ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in parts}
    finally:
        consumer.close()
        admin.close()


_ASSIGNMENT = re.compile(r"crawl\.jobs partitions (assigned|revoked): \[([\d, ]*)\]")


def held_partitions(log_path: Path) -> list[int]:
    """The job partitions a fleet crawler holds, as its log last said (assigned minus revoked).

    The broker can call a group Stable while a member has not taken its assignment yet (kafka-python
    3.0.12 sometimes never completes a join; the crawler reconnects after a while): only the crawler's
    own log says it is ready.
    """
    held: list[int] = []
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    for event, partitions in _ASSIGNMENT.findall(text):
        held = [int(p) for p in partitions.split(",") if p.strip()] if event == "assigned" else []
    return held


def assignment_events(log_path: Path) -> int:
    """How many times the crawler's log says its job partitions were assigned or revoked."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return len(_ASSIGNMENT.findall(text))


def stable_group_members(bootstrap: str, group: str) -> int:
    """Members of a consumer group once it is Stable (partitions assigned), else 0."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        info = admin.describe_groups([group])
    except KafkaError:  # CoordinatorNotAvailable while __consumer_offsets is being created
        return 0
    finally:
        admin.close()
    description = info[group]
    return len(description["members"]) if description["group_state"] == "Stable" else 0


def _main(argv: list[str]) -> None:
    from crawler.runner import run_crawl

    args = json.loads(argv[0])
    summary = run_crawl(args["seeds"], args.get("settings") or {}, show_progress=False)
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    _main(sys.argv[1:])


def write_warc(path: str | Path, records: list[dict[str, Any]], gzip: bool | None = None) -> Path:
    """Write a WARC (or WET) file with warcio; gzip by the .gz suffix unless `gzip` says otherwise.

    Each record: {"url", "type" ("response" | "conversion" | "request" | "warcinfo"), "body" (bytes|str),
    "date" (WARC-Date, ISO), "content_type", "status" (responses), "headers" (extra WARC headers)}.
    """
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path = Path(path)
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=path.suffix == ".gz" if gzip is None else gzip)
        for rec in records:
            body = rec.get("body", b"")
            body = body.encode("utf-8") if isinstance(body, str) else body
            kind = rec.get("type", "response")
            warc_headers = {"WARC-Date": rec.get("date", "2024-01-02T03:04:05Z"), **rec.get("headers", {})}
            http_headers = None
            if kind == "response":
                status = rec.get("status", 200)
                http_headers = StatusAndHeaders(
                    f"{status} {'OK' if status == 200 else 'Other'}",
                    [("Content-Type", rec.get("content_type", "text/html; charset=utf-8"))],
                    protocol="HTTP/1.1",
                )
            elif kind == "conversion":
                warc_headers.setdefault("Content-Type", rec.get("content_type", "text/plain"))
            record = writer.create_warc_record(
                rec.get("url", ""),
                kind,
                payload=io.BytesIO(body),
                http_headers=http_headers,
                warc_headers_dict=warc_headers,
                warc_content_type=rec.get("content_type", "text/plain") if kind == "conversion" else None,
            )
            writer.write_record(record)
    return path
