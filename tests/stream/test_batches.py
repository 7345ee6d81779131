"""The worker's batch bookkeeping on a real chDB store (in a subprocess: one chDB store per process)."""

import json
import subprocess
import sys

from schemas.messages import decode_page
from stream.samples import sample_messages
from stream.worker import BatchProcessor, RawMessage
from synthweb.pipeline import Pipeline, Stage
from tests.support.stream import REPO_ROOT

SCRIPT = """
import json, sys
from synthweb.config import load_settings
from schemas.messages import decode_page, encode_page
from stream.samples import sample_messages
from stream.worker import BatchProcessor, RawMessage

raw = [RawMessage("t.pages", 0, i, v, k) for i, (k, v) in enumerate(sample_messages(30, "s1", sites=1))]
# Two-phase as by default, with `ensemble` as the strong detector: the bookkeeping is the same, and the default's
# language models would cost ~45 s of CPU on the 30 strong-scored pages.
settings = load_settings({"SYNTHWEB_DB": sys.argv[1], "SYNTHWEB_DETECTOR": "ensemble"})
first = BatchProcessor.from_settings(settings)
results = [first.process(raw[0:10]), first.process(raw[10:16])]
# A crash after offset 15 was stored but before its offsets were committed: a new worker gets
# 4..19 again, batched differently.
second = BatchProcessor(first.pipeline, first.dead_letters)
results += [second.process(raw[4:12]), second.process(raw[12:20])]
# A crawl job redelivered after a crawler crash: five pages again as new messages at new offsets.
again = [
    RawMessage("t.pages", 0, 30 + i, encode_page(decode_page(m.value), job_id="retry")) for i, m in enumerate(raw[:5])
]
results.append(second.process(raw[20:30] + again + [again[0]]))
count = second.store.query(
    "SELECT count(), uniqExact(url), uniqExact(source_offset) FROM pages WHERE detector = 'hashed'")[1][0]
strong = second.store.query(
    "SELECT count(), uniqExact(url) FROM pages WHERE detector = 'ensemble' AND inclusion = 1")[1][0]
print(json.dumps({"outcomes": [r.outcomes for r in results], "count": list(count), "strong": list(strong)}))
"""


def test_replayed_regrouped_and_redelivered_pages_are_stored_once(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"chdb:///{tmp_path}/store"],
        capture_output=True, text=True, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""}, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outcomes"] == [
        {"stored": 10},
        {"stored": 6},
        {"replayed": 8},
        {"replayed": 4, "stored": 4},
        {"stored": 10, "duplicate": 6},
    ]
    assert result["count"] == [30, 30, 30]  # the fast detector's rows: every page once
    # Two-phase: one site under SYNTHWEB_STRONG_MIN_DOCUMENTS is strong-scored in full, once
    # too (its rows go in the same insert as the fast ones, under the batch's deduplication token).
    assert result["strong"] == [30, 30]


class FailOn(Stage):
    """A stage that fails every batch holding one poisoned url (no store: nothing to open)."""

    name = "fail-on"

    def __init__(self, url):
        self.url = url
        self.seen = []

    def run(self, pages):
        batch = list(pages)
        if any(p.url == self.url for p in batch):
            raise RuntimeError("poisoned page")
        self.seen.extend(p.url for p in batch)
        yield from batch


class SentLetters:
    """The processor's side of stream.dead_letters.DeadLetterLog, kept in a list (the Kafka one: test_worker)."""

    def __init__(self, fail_sends: int = 0):
        self.sent = []
        self.fail_sends = fail_sends

    def already_sent(self, message):
        return any(m.source == message.source and m.offset == message.offset for m, _ in self.sent)

    def send(self, letter):
        if self.fail_sends:
            self.fail_sends -= 1
            raise ConnectionError("broker away")
        self.sent.append((letter.message, letter.reason))

    def settle(self, source, stored_up_to):
        pass

    def forget(self):
        pass

    def close(self):
        pass


def test_a_page_that_fails_alone_is_dead_lettered_and_the_rest_is_processed():
    messages = sample_messages(6, "s1", sites=1)
    poisoned = decode_page(messages[3][1]).url
    stage = FailOn(poisoned)
    letters = SentLetters()
    processor = BatchProcessor(Pipeline([stage]), letters, retry_delays=(0.0,))
    raw = [RawMessage("t.pages", 0, i, v, k) for i, (k, v) in enumerate(messages)]
    result = processor.process(raw)
    assert result.outcomes == {"stored": 5, "dead": 1}
    assert [(d.reason, d.message.offset) for d in result.dead] == [("processing_failed", 3)]
    assert "poisoned page" in result.dead[0].detail and result.retries == 2
    assert len(stage.seen) == 5 and poisoned not in stage.seen
    assert [(m.offset, reason) for m, reason in letters.sent] == [(3, "processing_failed")]

    # Redelivered (a crash before the commit): the letter is in the topic already and is not sent again.
    again = BatchProcessor(Pipeline([FailOn(poisoned)]), letters, retry_delays=(0.0,)).process(raw[2:5])
    assert again.outcomes == {"stored": 2, "replayed": 1} and again.dead == []
    assert len(letters.sent) == 1


def test_a_letter_kafka_cannot_take_is_retried_until_it_is_sent_and_only_then_the_batch_returns():
    messages = [RawMessage("t.pages", 1, 7, b"\xff not json", b"k")]
    letters = SentLetters(fail_sends=2)
    processor = BatchProcessor(Pipeline([FailOn("nothing")]), letters, retry_delays=(0.0,))
    result = processor.process(messages)
    assert result.outcomes == {"dead": 1} and result.retries == 2
    assert [(m.offset, reason) for m, reason in letters.sent] == [(7, "undecodable")]
    assert processor.failing_since is None


def test_the_dead_letter_log_reads_the_topic_again_for_a_message_below_what_it_let_go():
    from stream.dead_letters import DeadLetterLog

    class Log(DeadLetterLog):  # the topic read back (Kafka's side: tests/stream/test_dead_letters.py)
        reads = 0

        def _recover(self, topic, partition):
            self.reads += 1
            return {3, 9}

    log = Log(["127.0.0.1:9"], "t.dead", "g", max_request_size=1024)
    at = [RawMessage("t.pages", 0, offset, b"") for offset in range(12)]
    assert log.already_sent(at[3]) and not log.already_sent(at[4]) and log.reads == 1
    log.settle("t.pages/0", 5)  # the store is past 5: offset 3 is let go
    assert log.already_sent(at[9]) and log.reads == 1
    assert log.already_sent(at[3]) and log.reads == 2  # redelivered without a rebalance: read again
    log.forget()
    assert log.already_sent(at[9]) and log.reads == 3
