"""`synthweb ingest warc --publish`: archive records onto pages.raw for the Faust workers, resumably."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from schemas.messages import decode_page
from tests.crawler.test_warc import archive_records, synthweb
from tests.support.crawl import write_warc

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def consume(kafka, topic: str) -> list:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def test_publish_sends_raw_pages_keyed_by_domain_and_resumes(kafka, tmp_path):
    topic = f"pages.raw.{uuid.uuid4().hex[:8]}"
    kafka.create_topics([topic], partitions=2)
    warc = write_warc(tmp_path / "pub.warc.gz", archive_records())
    env = {"SYNTHWEB_KAFKA_BOOTSTRAP": kafka.bootstrap, "SYNTHWEB_TOPIC_PAGES": topic}
    args = ["ingest", "warc", "--quiet", "--publish", "--db", f"chdb:///{tmp_path}/store", "--snapshot", "pub"]
    first = synthweb(*args, "--max-records", "9", "--batch-size", "2", str(warc), env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    rest = synthweb(*args, str(warc), env=env)
    assert rest.returncode == 0, rest.stderr[-2000:]
    summary = json.loads(rest.stderr.strip().splitlines()[-1])
    assert summary["resumed_after"] and summary["stored"] == 0
    messages = consume(kafka, topic)
    pages = [decode_page(m.value) for m in messages]
    # 10 articles + WET text + 3 skips (not_html, http_301, truncated), each published once.
    assert len(pages) == 14 and len({p.url for p in pages}) == 14
    assert Counter(p.skip for p in pages if p.skip) == {"not_html": 1, "http_301": 1, "truncated": 1}
    assert {m.key for m in messages} == {b"example.org"}
    assert all(p.snapshot == "pub" for p in pages)
    [wet] = [p for p in pages if "wet.example.org" in p.url]
    assert "<p>" in wet.html and len(wet.html) > 300
    articles = [p for p in pages if "/articles/" in p.url]
    assert all(p.fetched_at.isoformat() == "2023-06-07T08:09:10+00:00" for p in articles)
