"""Run a real Faust worker as a subprocess and talk to Kafka and the store: for tests and the bench.

env = worker_env(bootstrap, prefix="t1", db="chdb:///tmp/store")
with WorkerProcess(env, log_path) as worker:
    produce(bootstrap, env["SYNTHWEB_TOPIC_PAGES"], messages)
    worker.wait_caught_up(end_offsets(bootstrap, env["SYNTHWEB_TOPIC_PAGES"]))
rows = store_query(env["SYNTHWEB_DB"], "SELECT count() AS n FROM pages")   # after the worker exited
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from stream.metrics import parse_metrics
from tests.support.broker import free_port, terminate

REPO_ROOT = Path(__file__).resolve().parents[2]


class WorkerError(RuntimeError):
    """The worker died or did not catch up; the message carries the tail of its log."""


def worker_env(bootstrap: str, prefix: str, db: str, partitions: int = 3, **extra: object) -> dict[str, str]:
    """Environment for a worker on its own topics, consumer group and web port."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
        SYNTHWEB_KAFKA_BOOTSTRAP=bootstrap,
        SYNTHWEB_TOPIC_JOBS=f"{prefix}.jobs",
        SYNTHWEB_TOPIC_PAGES=f"{prefix}.pages",
        SYNTHWEB_TOPIC_DEAD=f"{prefix}.dead",
        SYNTHWEB_TOPIC_PARTITIONS=str(partitions),
        SYNTHWEB_WORKER_GROUP=f"{prefix}-workers",
        SYNTHWEB_WORKER_DATADIR=tempfile.mkdtemp(prefix=f"{prefix}-worker-data-"),
        SYNTHWEB_WORKER_WEB_PORT=str(free_port()),
        SYNTHWEB_WORKER_WEB_BIND="127.0.0.1",
        SYNTHWEB_DB=db,
        SYNTHWEB_WORKER_SESSION_TIMEOUT="6",  # the broker's minimum: a killed worker's partitions move on fast
        # These workers test delivery, not detection: the fast detector keeps a CPU-only worker at line rate
        # (the default's language models score a few pages a second on two cores).
        SYNTHWEB_DETECTOR="hashed",
        SYNTHWEB_FAST_DETECTOR="",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """`python -m faust -A stream.app worker` with the given environment, logging to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, command: list[str] | None = None):
        self.env = env
        self.log_path = Path(log_path)
        self.command = command or [sys.executable, "-m", "faust", "-A", "stream.app", "worker", "-l", "info"]
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{env['SYNTHWEB_WORKER_WEB_PORT']}/metrics"

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it; closed when we wait on it
        self.proc = subprocess.Popen(
            self.command, env=self.env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def metrics(self) -> dict[str, float] | None:
        """The worker's /metrics, parsed; None while its web server is not up."""
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return parse_metrics(response.read().decode())
        except OSError:
            return None

    def wait_for(self, predicate, timeout: float = 120.0, what: str = "condition") -> dict[str, float]:
        """Poll /metrics until predicate(metrics) holds; raise WorkerError if the worker dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise WorkerError(f"worker exited with {self.proc.returncode}; log tail:\n{self.log_tail()}")
            values = self.metrics()
            if values is not None and predicate(values):
                return values
            time.sleep(0.3)
        raise WorkerError(f"worker: no {what} after {timeout:.0f}s; log tail:\n{self.log_tail()}")

    def wait_caught_up(self, ends: dict[int, int], timeout: float = 120.0) -> dict[str, float]:
        """Wait until the worker's position reached `ends` ({partition: end offset}) on every partition."""
        topic = self.env["SYNTHWEB_TOPIC_PAGES"]

        def caught_up(values: dict[str, float]) -> bool:
            return all(
                values.get(f'synthweb_worker_position{{partition="{p}",topic="{topic}"}}', 0) >= end
                for p, end in ends.items()
                if end > 0
            )

        return self.wait_for(caught_up, timeout, what=f"catch-up to {ends}")

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (a clean stop: in-flight batch finished, offsets committed); SIGKILL after `timeout`."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        terminate(proc, timeout)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Send (key, value) messages with acks=all and wait for every acknowledgement."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=16 * 1024 * 1024)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in messages]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """{partition: end offset} of a topic."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout_ms: int = 5000) -> list:
    """Every message of a topic from the beginning (kafka-python ConsumerRecords)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=timeout_ms
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def store_query(db: str, sql: str) -> list[dict]:
    """Rows of a query on a store, read in a subprocess (a chDB store is open in one process at a time)."""
    proc = subprocess.run(
        [sys.executable, "-m", "synthweb.cli", "sql", "--db", db, "--format", "json", sql],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"store query failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)
