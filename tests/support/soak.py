"""The soak behind bench/soak_bench.py and tests/stream/test_soak.py: pages through Kafka -> Faust -> chDB at a
steady offered rate, with the worker's memory, lag and stored count sampled as it runs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

STORED = 'synthweb_worker_messages_total{outcome="stored"}'
WARMUP = 64  # pages stored before the clock starts


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def lag(metrics: dict[str, float]) -> int:
    return int(sum(v for k, v in metrics.items() if k.startswith("synthweb_worker_lag")))


def soak(pages: int, rate: float, partitions: int, workdir: Path, sample_every: float = 5.0, broker=None) -> dict:
    """Run the soak on `broker` (a started tests.support.broker.KafkaBroker; default: start one)."""
    if broker is None:
        from tests.support.broker import KafkaBroker

        with KafkaBroker(fetch_missing=True) as started:
            return soak(pages, rate, partitions, workdir, sample_every, started)
    from kafka import KafkaProducer

    from stream.samples import sample_messages
    from tests.support.stream import WorkerProcess, store_query, worker_env

    env = worker_env(
        broker.bootstrap, f"soak-{uuid.uuid4().hex[:6]}", f"chdb:///{workdir}/store", partitions,
        SYNTHWEB_WORKER_BATCH_SIZE=64, SYNTHWEB_WORKER_BATCH_SECONDS=0.5,
        SYNTHWEB_DETECTOR="hashed", SYNTHWEB_FAST_DETECTOR="",
    )  # fmt: skip
    topic = env["SYNTHWEB_TOPIC_PAGES"]
    broker.create_topics([topic], partitions=partitions)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
    chunk = max(1, int(rate))
    samples = []
    with WorkerProcess(env, workdir / "worker.log") as worker:
        # Warm-up, outside the clock: the worker is up and has stored a first batch.
        for key, value in sample_messages(WARMUP, "soak-warmup", sites=12):
            producer.send(topic, key=key, value=value)
        producer.flush()
        worker.wait_for(lambda m: m.get(STORED, 0) >= WARMUP, timeout=300, what="the warm-up pages")
        warm_mb = rss_mb(worker.proc.pid)

        def sample(now: float, sent: int) -> dict:
            metrics = worker.metrics() or {}
            samples.append({"t": round(now - start, 1), "sent": sent, "stored": int(metrics.get(STORED, 0)) -
                            WARMUP, "lag": lag(metrics), "rss_mb": rss_mb(worker.proc.pid)})  # fmt: skip
            return samples[-1]

        sent, start = 0, time.perf_counter()
        next_sample = start
        while True:
            now = time.perf_counter()
            if sent < pages and sent < (now - start + 1) * rate:
                n = min(chunk, pages - sent)
                # Generated chunk by chunk (a snapshot per chunk): the generator's memory stays flat too.
                for key, value in sample_messages(n, f"soak-{sent}", sites=12):
                    producer.send(topic, key=key, value=value)
                producer.flush()
                sent += n
            if now >= next_sample:
                last = sample(now, sent)
                next_sample += sample_every
                if sent >= pages and last["stored"] >= pages and last["lag"] == 0:
                    break
            if time.perf_counter() - start > 4 * 3600:
                raise SystemExit(f"soak: not caught up after 4 h; worker log:\n{worker.log_tail()}")
            time.sleep(0.05)
        producer.close()
        end = time.perf_counter()
    rows = store_query(
        env["SYNTHWEB_DB"],
        "SELECT count() AS rows, uniqExact(snapshot, url) AS urls FROM pages WHERE snapshot != 'soak-warmup'",
    )[0]
    return {
        "pages": pages,
        "rate_offered": rate,
        "seconds": round(end - start, 1),
        "pages_per_s": round(pages / (end - start), 1),
        "store": rows,
        "exact": rows == {"rows": pages, "urls": pages},
        "lag_max": max(s["lag"] for s in samples),
        "lag_end": samples[-1]["lag"],
        "memory_mb": {
            "after_warmup": warm_mb,
            "peak": max(s["rss_mb"] for s in samples),
            "end": samples[-1]["rss_mb"],
        },  # fmt: skip
        "samples": samples,
    }
