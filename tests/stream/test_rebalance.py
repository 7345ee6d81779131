"""Three Faust workers share six partitions and one store while the group rebalances under them.

One worker is killed -9 mid-stream, one stopped with SIGTERM, and a new one joins; the store ends
with every page exactly once. The store is embedded chDB opened `shared` (SYNTHWEB_DB_SHARED): the
workers take turns holding it, one batch at a time, as they would share a ClickHouse server.
"""

import tempfile
import uuid

import pytest

from stream.samples import sample_messages
from tests.support.broker import free_port
from tests.support.stream import WorkerProcess, end_offsets, produce, store_query, worker_env

pytestmark = pytest.mark.kafka


def stored(metrics: dict) -> float:
    return metrics.get('synthweb_worker_messages_total{outcome="stored"}', 0)


def test_three_workers_rebalancing_store_every_page_once(kafka, tmp_path):
    n = 1500
    base = worker_env(
        kafka.bootstrap,
        f"rebal-{uuid.uuid4().hex[:6]}",
        f"chdb:///{tmp_path}/store",
        partitions=6,
        SYNTHWEB_DB_SHARED="true",
        SYNTHWEB_WORKER_BATCH_SIZE=16,
        SYNTHWEB_WORKER_BATCH_SECONDS=0.2,
    )
    topic = base["SYNTHWEB_TOPIC_PAGES"]
    kafka.create_topics([topic], partitions=6)
    produce(kafka.bootstrap, topic, sample_messages(n, "snap-r", sites=12))
    ends = end_offsets(kafka.bootstrap, topic)
    assert sum(1 for end in ends.values() if end) == 6

    def worker(name: str) -> WorkerProcess:
        env = {**base, "SYNTHWEB_WORKER_WEB_PORT": str(free_port()),
               "SYNTHWEB_WORKER_DATADIR": tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_path)}  # fmt: skip
        return WorkerProcess(env, tmp_path / f"{name}.log")

    killed, stopped, stays, joins = worker("killed"), worker("stopped"), worker("stays"), worker("joins")
    for w in (killed, stopped, stays):
        w.start()
    try:
        # All three hold partitions and store before the faults.
        for w in (killed, stopped, stays):
            w.wait_for(lambda m: stored(m) >= 16, what="a first stored batch")
        before_kill = killed.wait_for(lambda m: stored(m) >= 32, what="two stored batches")
        killed.kill()  # kill -9 mid-stream: its partitions move after the session timeout
        so_far = stored(stays.metrics() or {})
        stays.wait_for(lambda m: stored(m) >= so_far + 32, what="progress after the kill")
        assert stopped.stop() == 0  # SIGTERM mid-stream: the batch in flight finishes, its offsets are committed
        joins.start()
        joined = joins.wait_for(lambda m: stored(m) >= 16, timeout=180, what="the new worker storing")
        survivors = [stays, joins]
        totals = {}
        for w in survivors:
            totals[w.log_path.stem] = w.wait_for(lambda m: _caught_up(m, topic, ends, survivors), timeout=240,
                                                 what="the group caught up")  # fmt: skip
    finally:
        for w in (killed, stopped, stays, joins):
            w.stop()

    rows = store_query(
        base["SYNTHWEB_DB"], "SELECT count() AS rows, uniqExact(url) AS urls, uniqExact(source) AS sources FROM pages"
    )[0]
    assert rows == {"rows": n, "urls": n, "sources": 6}
    assert stored(before_kill) < n and stored(joined) >= 16  # the faults came mid-stream; the joiner got partitions


def _caught_up(metrics: dict, topic: str, ends: dict[int, int], workers: list[WorkerProcess]) -> bool:
    """Every partition's position, over the surviving workers' gauges, at its end offset."""
    positions: dict[int, float] = {}
    for w in workers:
        values = w.metrics() or {}
        for p in ends:
            key = f'synthweb_worker_position{{partition="{p}",topic="{topic}"}}'
            positions[p] = max(positions.get(p, 0), values.get(key, 0))
    return all(positions.get(p, 0) >= end for p, end in ends.items() if end)
