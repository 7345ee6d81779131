"""Dead letters once each, even when the worker crashes after sending them (real broker, real Faust worker)."""

import re
import uuid
from collections import Counter

import pytest

from schemas.messages import decode_dead_letter
from stream.samples import sample_messages
from tests.support.stream import WorkerProcess, end_offsets, produce, read_topic, store_query, worker_env

pytestmark = pytest.mark.kafka

STAGES = [
    "crawler.extract.ExtractStage",
    "tests.support.faults.FailAlone",
    "synthweb.score.ScoreStage",
    "tests.support.faults.CrashBeforeStore",
    "synthweb.store.StoreStage",
    "tests.support.faults.CrashAfterStore",
]


def test_crashes_after_dead_letters_were_sent_send_none_twice_and_lose_none(kafka, tmp_path):
    env = worker_env(
        kafka.bootstrap,
        f"dead-{uuid.uuid4().hex[:6]}",
        f"chdb:///{tmp_path}/store",
        partitions=2,
        SYNTHWEB_WORKER_BATCH_SIZE=64,  # the whole stream in a batch or two: the crashes come before any commit
        SYNTHWEB_WORKER_BATCH_SECONDS=1.0,
        SYNTHWEB_STAGES=",".join(STAGES),
        SYNTHWEB_TEST_MARKERS=str(tmp_path),
        # The first crash: the batch's letters sent, nothing stored. The whole batch fails on the poisoned
        # page, so the second comes page by page: pages up to 31 stored, the poisoned page's letter not sent,
        # nothing committed.
        SYNTHWEB_TEST_CRASH_BEFORE_STORE="/articles/5.html",
        SYNTHWEB_TEST_CRASH_AFTER_STORE="/articles/31.html",
        SYNTHWEB_TEST_POISON="/articles/29.html",  # fails alone: a processing_failed letter
        SYNTHWEB_RETRY_SECONDS="0.1",
    )
    topic = env["SYNTHWEB_TOPIC_PAGES"]
    pages = sample_messages(40, "snap-d", sites=2)  # odd pages on one site: one partition holds every fault
    key = pages[1][0]
    bad = [(key, b"\xff undecodable %d" % i) for i in range(3)]
    stream = pages[:5] + bad[:1] + pages[5:15] + bad[1:2] + pages[15:] + bad[2:]
    kafka.create_topics([topic], partitions=2)
    produce(kafka.bootstrap, topic, stream)
    ends = end_offsets(kafka.bootstrap, topic)
    log = tmp_path / "worker.log"

    for crash in ("before store", "after store"):
        worker = WorkerProcess(env, log).start()
        assert worker.proc.wait(120) == 137, f"no crash {crash}:\n{worker.log_tail()}"
    with WorkerProcess(env, log) as worker:
        final = worker.wait_caught_up(ends)

    rows = store_query(env["SYNTHWEB_DB"], "SELECT count() AS rows, uniqExact(url) AS urls FROM pages")[0]
    assert rows == {"rows": 39, "urls": 39}  # every page but the poisoned one, once
    letters = [decode_dead_letter(m.value) for m in read_topic(kafka.bootstrap, env["SYNTHWEB_TOPIC_DEAD"])]
    assert sorted(Counter(d["reason"] for d in letters).items()) == [("processing_failed", 1), ("undecodable", 3)]
    assert len({(d["partition"], d["offset"]) for d in letters}) == 4  # once each
    assert sorted(d["original"] for d in letters if d["reason"] == "undecodable") == [v for _, v in bad]
    # The restarted workers found the letters sent before the crashes in the topic and did not send them again.
    recovered = [int(n) for n in re.findall(r"already sent above offset \d+: (\d+)", log.read_text())]
    assert sum(recovered) >= 2, recovered
    assert final.get('synthweb_worker_messages_total{outcome="replayed"}', 0) >= 1
