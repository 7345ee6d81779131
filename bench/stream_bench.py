"""Pages/s through Kafka -> Faust -> ClickHouse (embedded chDB) vs the embedded in-process pipeline.

    python bench/stream_bench.py [--pages 2000] [--partitions 3] [--batch 64]

Both paths run the same SYNTHWEB_STAGES (extract, score, store) on the same sample pages
(stream/samples.py: real article HTML), each into a fresh chDB store, in the same run:

* stream: the pages are produced to a real KRaft broker first (produce rate reported apart),
  then one `faust -A stream.app worker` subprocess consumes them. The rate counts from the end
  of its first batch (start-up and model warm-up excluded) to the moment /metrics shows it
  caught up with every partition.
* embedded: a subprocess decodes nothing and runs Pipeline.process on batches of the same size,
  the way the Scrapy item pipeline does; its rate also excludes the first batch.

Prints one JSON object. Timings depend on the machine; run it on an otherwise idle one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

PEER = """
import json, sys, time
from stream.samples import sample_pages
from synthweb.config import load_settings
from synthweb.pipeline import Pipeline, batched_pages

db, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settings = load_settings({"SYNTHWEB_DB": db, "SYNTHWEB_BATCH_SIZE": batch})
pipeline = Pipeline.from_settings(settings)
batches = list(batched_pages(sample_pages(n, "bench-embedded", sites=12), batch))
pipeline.process(batches[0])
start = time.perf_counter()
for b in batches[1:]:
    pipeline.process(b)
seconds = time.perf_counter() - start
rows = pipeline.stages[-1].store.query("SELECT count() FROM pages")[1][0][0]
print(json.dumps({"pages": n - len(batches[0]), "seconds": seconds, "rows": rows}))
"""


def run_embedded(n: int, batch: int, workdir: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PEER, f"chdb:///{workdir}/embedded", str(n), str(batch)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""},
    )
    if proc.returncode != 0:
        raise SystemExit(f"embedded peer failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["pages_per_s"] = round(out["pages"] / out["seconds"], 1)
    return out


def run_stream(n: int, batch: int, partitions: int, workdir: Path) -> dict:
    from stream.samples import sample_messages
    from tests.support.broker import KafkaBroker
    from tests.support.stream import WorkerProcess, end_offsets, produce, store_query, worker_env

    with KafkaBroker(fetch_missing=True) as broker:
        env = worker_env(
            broker.bootstrap, f"bench-{uuid.uuid4().hex[:6]}", f"chdb:///{workdir}/stream", partitions,
            SYNTHWEB_WORKER_BATCH_SIZE=batch, SYNTHWEB_WORKER_BATCH_SECONDS=0.5,
        )  # fmt: skip
        topic = env["SYNTHWEB_TOPIC_PAGES"]
        broker.create_topics([topic], partitions=partitions)
        messages = sample_messages(n, "bench-stream", sites=12)
        start = time.perf_counter()
        produce(broker.bootstrap, topic, messages)
        produce_seconds = time.perf_counter() - start
        ends = end_offsets(broker.bootstrap, topic)
        stored_key = 'synthweb_worker_messages_total{outcome="stored"}'
        with WorkerProcess(env, workdir / "worker.log") as worker:
            started = time.perf_counter()
            first = worker.wait_for(lambda m: m.get(stored_key, 0) > 0, timeout=300, what="a first batch")
            t0 = time.perf_counter()
            final = worker.wait_caught_up(ends, timeout=600)
            t1 = time.perf_counter()
        rows = store_query(env["SYNTHWEB_DB"], "SELECT count() AS rows, uniqExact(url) AS urls FROM pages")[0]
    pages = final[stored_key] - first[stored_key]
    stage = {
        name: round(final[f'synthweb_worker_stage_seconds_sum{{stage="{name}"}}'] / n * 1000, 2)
        for name in ("extract", "score", "store")
    }
    return {
        "pages": int(pages),
        "seconds": round(t1 - t0, 2),
        "pages_per_s": round(pages / (t1 - t0), 1),
        "startup_seconds": round(t0 - started, 2),
        "produce_pages_per_s": round(n / produce_seconds, 1),
        "mean_batch": round(final["synthweb_worker_batch_size_sum"] / final["synthweb_worker_batch_size_count"], 1),
        "stage_ms_per_page": stage,
        **rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synthweb-stream-bench-") as tmp:
        workdir = Path(tmp)
        stream = run_stream(args.pages, args.batch, args.partitions, workdir)
        embedded = run_embedded(args.pages, args.batch, workdir)
    result = {"pages": args.pages, "batch": args.batch, "partitions": args.partitions}
    result.update(
        stream=stream, embedded=embedded, stream_vs_embedded=round(stream["pages_per_s"] / embedded["pages_per_s"], 2)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
