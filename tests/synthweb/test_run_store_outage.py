"""`synthweb run` when the embedded store refuses writes mid-crawl: it waits and stores everything, or it stops
with a clear error after SYNTHWEB_STORE_GIVE_UP_SECONDS; it never drops pages silently."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.faults import immutable, require_immutable_flag
from tests.support.stream import REPO_ROOT, store_query

pytestmark = pytest.mark.slow

STAGES = ",".join(
    ["crawler.extract.ExtractStage", "synthweb.score.ScoreStage", "tests.support.faults.FreezeStore",
     "synthweb.store.StoreStage"]
)  # fmt: skip


def run(store: Path, **env: object) -> tuple[int, dict, str]:
    """`synthweb run --sample-web` into `store` with FreezeStore in the stages; the store is thawed after it."""
    require_immutable_flag(store.parent)
    command = [sys.executable, "-m", "synthweb.cli", "run", "--sample-web", "--quiet", "--db", f"chdb:///{store}",
               "--detector", "hashed"]  # fmt: skip
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "SYNTHWEB_STAGES": STAGES, "SYNTHWEB_BATCH_SIZE": "16",
                 "SYNTHWEB_RETRY_SECONDS": "0.2,0.5", "SYNTHWEB_DEDUP": "false",
                 **{k: str(v) for k, v in env.items()}},
        )  # fmt: skip
    finally:
        immutable(store, False)
    summary = json.loads(next(line for line in proc.stderr.splitlines() if line.startswith("{")))
    return proc.returncode, summary, proc.stderr


def stored(dsn: str) -> int:
    return store_query(dsn, "SELECT count() AS n FROM pages")[0]["n"]


def test_a_store_outage_mid_crawl_holds_the_crawl_and_every_page_is_stored(tmp_path):
    dsn = f"chdb:///{tmp_path}/store"
    code, summary, err = run(tmp_path / "store", SYNTHWEB_TEST_FREEZE_AT=2, SYNTHWEB_TEST_FREEZE_SECONDS=4)
    assert code == 0, err[-3000:]
    assert "failed (attempt" in err  # the outage happened: inserts failed and were retried
    assert summary["pages_failed"] == 0 and summary["pages_stored"] > 16
    assert stored(dsn) == summary["pages_stored"]  # every page the crawl kept, once


def test_a_store_that_stays_down_stops_the_crawl_with_a_clear_error(tmp_path):
    dsn = f"chdb:///{tmp_path}/store"
    code, summary, err = run(tmp_path / "store", SYNTHWEB_TEST_FREEZE_AT=2, SYNTHWEB_STORE_GIVE_UP_SECONDS=2)
    assert code == 1
    assert summary["finish_reason"] == "store_failed" and summary["pages_failed"] >= 16
    message = err.strip().splitlines()[-1]
    assert message.startswith("synthweb: error: every page failed to be stored for 2s (the store refusing writes?)"), (
        message
    )
    assert "fetched pages were not stored (those stored before stay)" in message
    assert "Traceback" not in err
    assert 0 < stored(dsn) == summary["pages_stored"] <= 16  # the first batch (16 less its skips), stored before, stays
