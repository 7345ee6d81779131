"""The store refusing writes mid-stream (its directory made immutable, as a failed or full disk would): the worker
holds the stream (stores nothing, acknowledges nothing), says so in /metrics and /readyz, and when the store is
back stores every page exactly once.
"""

import time
import urllib.error
import urllib.request
import uuid

import pytest

from stream.samples import sample_messages
from tests.support.faults import immutable, require_immutable_flag
from tests.support.stream import WorkerProcess, end_offsets, produce, store_query, worker_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
STORED = 'synthweb_worker_messages_total{outcome="stored"}'
FAILING = "synthweb_worker_failing_seconds"


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_store_refusing_writes_holds_the_stream_and_nothing_is_lost(kafka, tmp_path):
    require_immutable_flag(tmp_path)
    n, store = 300, tmp_path / "store"
    env = worker_env(
        kafka.bootstrap, f"outage-{uuid.uuid4().hex[:6]}", f"chdb:///{store}",
        SYNTHWEB_WORKER_BATCH_SIZE=8, SYNTHWEB_WORKER_BATCH_SECONDS=0.2,
        SYNTHWEB_DETECTOR="ensemble",  # ~8 pages/s: the outage lands mid-stream
    )  # fmt: skip
    topic = env["SYNTHWEB_TOPIC_PAGES"]
    kafka.create_topics([topic], partitions=3)
    produce(kafka.bootstrap, topic, sample_messages(n, "snap-o", sites=7))
    ends = end_offsets(kafka.bootstrap, topic)
    ready = f"http://127.0.0.1:{env['SYNTHWEB_WORKER_WEB_PORT']}/readyz"
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        worker.wait_for(lambda m: m.get(STORED, 0) >= 40, timeout=180, what="40 stored pages")
        assert status(ready) == 200
        immutable(store, True)
        try:
            held = worker.wait_for(lambda m: m.get(FAILING, 0) >= 3, timeout=90, what="the worker noticing")
            assert status(ready) == 503  # out of the Service's endpoints while the store is down
            assert status(ready.replace("/readyz", "/healthz")) == 200  # but alive: a restart would not help
            time.sleep(3)
            still = worker.metrics()
            assert still[STORED] == held[STORED] < n and still[FAILING] > held[FAILING]  # holding, not dropping
            assert worker.proc.poll() is None
        finally:
            immutable(store, False)
        final = worker.wait_caught_up(ends, timeout=300)
        assert final[FAILING] == 0 and status(ready) == 200
    rows = store_query(env["SYNTHWEB_DB"], "SELECT count() AS rows, uniqExact(url) AS urls FROM pages")[0]
    assert rows == {"rows": n, "urls": n}
    assert final[STORED] == n
