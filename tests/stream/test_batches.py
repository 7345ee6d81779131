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
first = BatchProcessor.from_settings(load_settings({"SYNTHWEB_DB": sys.argv[1]}))
results = [first.process(raw[0:10]), first.process(raw[10:16])]
# A crash after offset 15 was stored but before its offsets were committed: a new worker gets
# 4..19 again, batched differently.
second = BatchProcessor(first.pipeline)
results += [second.process(raw[4:12]), second.process(raw[12:20])]
# A crawl job redelivered after a crawler crash: five pages again as new messages at new offsets.
again = [
    RawMessage("t.pages", 0, 30 + i, encode_page(decode_page(m.value), job_id="retry")) for i, m in enumerate(raw[:5])
]
results.append(second.process(raw[20:30] + again + [again[0]]))
count = second.store.query(
    "SELECT count(), uniqExact(url), uniqExact(source_offset) FROM pages WHERE detector = 'hashed'")[1][0]
strong = second.store.query(
    "SELECT count(), uniqExact(url) FROM pages WHERE detector != 'hashed' AND inclusion = 1")[1][0]
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
    # Two-phase (the defaults): one site under SYNTHWEB_STRONG_MIN_DOCUMENTS is strong-scored in full, once
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


def test_a_page_that_fails_alone_is_dead_lettered_and_the_rest_is_processed():
    messages = sample_messages(6, "s1", sites=1)
    poisoned = decode_page(messages[3][1]).url
    stage = FailOn(poisoned)
    processor = BatchProcessor(Pipeline([stage]), retry_delays=(0.0,))
    result = processor.process([RawMessage("t.pages", 0, i, v, k) for i, (k, v) in enumerate(messages)])
    assert result.outcomes == {"stored": 5}
    assert [(d.reason, d.message.offset) for d in result.dead] == [("processing_failed", 3)]
    assert "poisoned page" in result.dead[0].detail and result.retries == 2
    assert len(stage.seen) == 5 and poisoned not in stage.seen
