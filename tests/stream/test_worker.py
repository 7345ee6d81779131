"""Faust workers against a real broker: pages.raw -> stages -> chDB, counted exactly once.

Each worker is a real `faust -A stream.app worker` subprocess on its own topics and consumer
group; the store is read after it exits (a chDB store is open in one process at a time).
"""

import json
import sys
import uuid

import pytest

from schemas.messages import decode_dead_letter, decode_page, encode_page
from stream.samples import sample_messages
from tests.support.stream import WorkerProcess, end_offsets, produce, read_topic, store_query, worker_env

pytestmark = pytest.mark.kafka


def _prefix(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def shared_run(kafka, tmp_path_factory):
    """One worker run over good pages, two bad messages, more good pages and redelivered pages."""
    tmp = tmp_path_factory.mktemp("worker")
    env = worker_env(kafka.bootstrap, _prefix("shared"), f"chdb:///{tmp}/store", SYNTHWEB_WORKER_BATCH_SIZE=16)
    topic = env["SYNTHWEB_TOPIC_PAGES"]
    first = sample_messages(40, "snap-a", sites=5)
    later = sample_messages(60, "snap-a", sites=5)[40:]
    schema_invalid = json.dumps({"schema": "synthweb.raw_page", "version": 1, "url": "ftp://x"}).encode()
    bad = [(b"synthweb-sample0.org", b"\xff\xfe not json at all"), (b"synthweb-sample0.org", schema_invalid)]
    # A crawl job redelivered after a crawler crash: the same pages again as new messages,
    # one of them twice within what will be one batch.
    again = [(key, encode_page(decode_page(value), job_id="retry")) for key, value in first[:6]]
    again.append(again[0])
    kafka.create_topics([topic], partitions=3)
    produce(kafka.bootstrap, topic, first + bad + later + again)
    ends = end_offsets(kafka.bootstrap, topic)
    worker = WorkerProcess(env, tmp / "worker.log")
    with worker:
        metrics = worker.wait_caught_up(ends)
    rows = store_query(
        env["SYNTHWEB_DB"],
        "SELECT count() AS rows, uniqExact(url) AS urls, countIf(source LIKE '%.pages/%') AS sourced, "
        "min(source_offset) AS min_offset, countIf(p_synthetic IS NULL) AS unscored FROM pages",
    )[0]
    dead = [decode_dead_letter(m.value) for m in read_topic(kafka.bootstrap, env["SYNTHWEB_TOPIC_DEAD"])]
    return {"rows": rows, "dead": dead, "metrics": metrics, "bad": bad, "ends": ends, "worker": worker}


def test_every_page_is_stored_exactly_once(shared_run):
    rows = shared_run["rows"]
    assert rows["rows"] == 60 and rows["urls"] == 60
    assert rows["sourced"] == 60 and rows["min_offset"] >= 0  # provenance: "<topic>/<partition>" and the offset
    assert rows["unscored"] == 0


def test_bad_messages_go_to_pages_dead_with_their_bytes_and_the_stream_goes_on(shared_run):
    dead = shared_run["dead"]
    assert sorted(d["reason"] for d in dead) == ["invalid", "undecodable"]
    assert sorted(d["original"] for d in dead) == sorted(value for _, value in shared_run["bad"])
    assert all(d["topic"].endswith(".pages") and d["offset"] >= 0 for d in dead)
    assert shared_run["rows"]["rows"] == 60  # the 20 pages after the bad ones are stored too


def test_redelivered_pages_are_dropped_as_duplicates(shared_run):
    m = shared_run["metrics"]
    assert m['synthweb_worker_messages_total{outcome="duplicate"}'] == 7
    assert m['synthweb_worker_messages_total{outcome="stored"}'] == 60


def test_metrics_cover_pages_batches_latencies_and_lag(shared_run):
    m = shared_run["metrics"]
    assert m['synthweb_worker_pages_total{outcome="stored"}'] == 60
    assert m['synthweb_worker_dead_letters_total{reason="undecodable"}'] == 1
    assert m["synthweb_worker_batch_size_sum"] == sum(shared_run["ends"].values())
    assert m['synthweb_worker_stage_seconds_count{stage="score"}'] >= 1
    assert m['synthweb_worker_stage_seconds_count{stage="store"}'] >= 1
    lags = [v for k, v in m.items() if k.startswith("synthweb_worker_lag{")]
    assert lags and all(v == 0 for v in lags)


def test_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(kafka, tmp_path):
    n = 300
    env = worker_env(
        kafka.bootstrap,
        _prefix("kill"),
        f"chdb:///{tmp_path}/store",
        SYNTHWEB_WORKER_BATCH_SIZE=8,
        SYNTHWEB_WORKER_BATCH_SECONDS=0.2,
        # slow enough (~8 pages/s) that each worker is stopped mid-stream; hashed would drain all 300 first
        SYNTHWEB_DETECTOR="ensemble",
    )
    topic = env["SYNTHWEB_TOPIC_PAGES"]
    kafka.create_topics([topic], partitions=3)
    produce(kafka.bootstrap, topic, sample_messages(n, "snap-k", sites=7))
    ends = end_offsets(kafka.bootstrap, topic)
    log = tmp_path / "worker.log"

    def stored(m):
        return m.get('synthweb_worker_messages_total{outcome="stored"}', 0)

    first = WorkerProcess(env, log).start()
    seen = first.wait_for(lambda m: stored(m) >= 60, what="60 stored pages")
    first.kill()  # kill -9: no commit, no cleanup, maybe mid-insert
    assert stored(seen) < n

    second = WorkerProcess(env, log).start()
    second.wait_for(lambda m: stored(m) >= 40, what="40 more stored pages")
    assert second.stop() == 0  # SIGTERM mid-stream: the batch in flight finishes before offsets are committed

    # the third one through the CLI entry point: `synthweb worker --db DSN`
    cli = [sys.executable, "-m", "synthweb.cli", "worker", "--db", env.pop("SYNTHWEB_DB")]
    with WorkerProcess(env, log, command=cli) as third:
        final = third.wait_caught_up(ends)
    rows = store_query(
        cli[-1], "SELECT count() AS rows, uniqExact(url) AS urls, uniqExact(source) AS sources FROM pages"
    )[0]
    assert rows == {"rows": n, "urls": n, "sources": sum(1 for end in ends.values() if end)}
    assert stored(final) < n  # the third worker did not start over
