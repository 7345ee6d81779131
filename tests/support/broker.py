"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) on loopback.

The broker jars come from Maven Central through ``infra/kafka/fetch.sh`` (pinned in ``infra/kafka/pom.xml``) into
``infra/kafka/target/libs``; ``SYNTHWEB_KAFKA_LIBS`` points elsewhere. Java 17+ must be on PATH (or ``JAVA_HOME``).

    with KafkaBroker() as broker:
        broker.create_topics(["pages"], partitions=3)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)

``python -m tests.support.broker`` starts one and prints its bootstrap address until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO_ROOT / "infra" / "kafka" / "fetch.sh"
DEFAULT_LIBS = REPO_ROOT / "infra" / "kafka" / "target" / "libs"
LIBS_ENV = "SYNTHWEB_KAFKA_LIBS"

_KAFKA_MAIN = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.apache.name = org.apache.kafka
logger.apache.level = {level}
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
"""


class KafkaBrokerError(RuntimeError):
    """The broker could not be started (the message carries the tail of its log)."""


def libs_dir() -> Path:
    """Directory with the broker jars: ``$SYNTHWEB_KAFKA_LIBS`` or ``infra/kafka/target/libs``."""
    env = os.environ.get(LIBS_ENV)
    return Path(env).expanduser().resolve() if env else DEFAULT_LIBS


def have_libs(libs: Path | None = None) -> bool:
    libs = libs or libs_dir()
    return libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))


def fetch_libs() -> Path:
    """Run ``infra/kafka/fetch.sh`` (idempotent; needs mvn) and return the jar directory."""
    if os.environ.get(LIBS_ENV):
        libs = libs_dir()
        if not have_libs(libs):
            raise KafkaBrokerError(f"${LIBS_ENV}={libs} has no kafka_2.13-*.jar")
        return libs
    proc = subprocess.run(["bash", str(FETCH_SCRIPT)], capture_output=True, text=True)
    if proc.returncode != 0 or not have_libs(DEFAULT_LIBS):
        raise KafkaBrokerError(f"{FETCH_SCRIPT} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return DEFAULT_LIBS


def java_executable() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def terminate(proc: subprocess.Popen, timeout: float) -> bool:
    """SIGTERM a running process and wait; SIGKILL it after `timeout` s. True if it had to be killed."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what ``random-uuid`` prints)."""
    while True:  # like Kafka's Uuid.randomUuid: no leading "-", which the storage tool would read as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Have Linux SIGTERM the JVM when the process that started it dies (no orphan brokers after a killed test)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class KafkaBroker:
    """A single-node KRaft Kafka broker as a Java subprocess, listening on 127.0.0.1 only.

    Storage and logs live in a temp dir that :meth:`stop` removes. Use as a context manager, or call
    :meth:`start` / :meth:`stop`. ``bootstrap`` is ``"127.0.0.1:PORT"``.
    """

    def __init__(
        self,
        *,
        libs: str | Path | None = None,
        port: int | None = None,
        heap: str = "512m",
        auto_create_topics: bool = False,
        num_partitions: int = 1,
        start_timeout: float = 60.0,
        log_level: str = "INFO",
        extra_config: Mapping[str, object] | None = None,
        fetch_missing: bool = False,
        fast_start: bool = True,
    ) -> None:
        self.libs = Path(libs).resolve() if libs else libs_dir()
        self.requested_port = port
        self.heap = heap
        self.auto_create_topics = auto_create_topics
        self.num_partitions = num_partitions
        self.start_timeout = start_timeout
        self.log_level = log_level
        self.extra_config = dict(extra_config or {})
        self.fetch_missing = fetch_missing
        self.fast_start = fast_start
        self.cluster_id = random_cluster_id()
        self.port: int | None = None
        self.controller_port: int | None = None
        self.workdir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None
        self._log_file = None
        self._cds_dump: Path | None = None

    # -- public API ---------------------------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise KafkaBrokerError("broker not started")
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "broker.log" if self.workdir else None

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> KafkaBroker:
        if self.proc is not None:
            raise KafkaBrokerError("broker already started")
        java = java_executable()
        if java is None:
            raise KafkaBrokerError("java not found: install a JDK/JRE 17+ or set JAVA_HOME")
        if not have_libs(self.libs):
            if self.fetch_missing and self.libs == libs_dir():
                self.libs = fetch_libs()
            else:
                raise KafkaBrokerError(f"no Kafka jars in {self.libs}: run `bash {FETCH_SCRIPT}` (or set ${LIBS_ENV})")
        t0 = time.monotonic()
        # A free port can be taken by someone else between our probe and the JVM's bind: retry on that.
        for attempt in range(3):
            self.workdir = Path(tempfile.mkdtemp(prefix="synthweb-kafka-"))
            self.port = self.requested_port or free_port()
            self.controller_port = free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
            try:
                self._write_config()
                self._format_storage(java)
                self._launch(java)
                self._wait_ready(t0)
            except KafkaBrokerError as err:
                bind_clash = "Address already in use" in str(err) or "BindException" in str(err)
                self.stop()
                if bind_clash and self.requested_port is None and attempt < 2:
                    continue
                raise
            except BaseException:
                self.stop()
                raise
            self.start_seconds = time.monotonic() - t0
            return self
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the broker (clean shutdown), SIGKILL it after ``timeout`` s, and remove the temp dir."""
        proc, self.proc = self.proc, None
        if proc is not None and terminate(proc, timeout):
            self._cds_dump = None  # a JVM killed while dumping leaves a partial archive: never keep that
        self._keep_cds_archive()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def restart(self, down_seconds: float = 0.0, timeout: float = 15.0) -> float:
        """Stop the broker cleanly, leave it down `down_seconds`, and start it again on the same port and the
        same data (a broker restart, as an operator's rolling restart or a crash and recovery). Returns how many
        seconds it was down, until it answered again."""
        if self.proc is None:
            raise KafkaBrokerError("broker not started")
        java = java_executable()
        t0 = time.monotonic()
        proc, self.proc = self.proc, None
        terminate(proc, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        (self.workdir / "broker.log").rename(self.workdir / f"broker.{int(t0)}.log")
        time.sleep(down_seconds)
        self._cds_dump = None  # the archive, if any, is kept from the first start
        self._launch(java)
        self._wait_ready(time.monotonic())
        return time.monotonic() - t0

    def log_tail(self, lines: int = 60) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no broker log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def admin(self, **configs: object):
        """A kafka-python ``KafkaAdminClient`` on this broker (close it when done)."""
        from kafka.admin import KafkaAdminClient

        configs.setdefault("request_timeout_ms", 10_000)
        return KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="synthweb-broker-admin", **configs)

    def create_topics(
        self,
        names: Iterable[str],
        partitions: int = 1,
        *,
        configs: Mapping[str, str] | None = None,
        exist_ok: bool = True,
    ) -> None:
        """Create topics (replication factor 1) and wait until every partition has a leader."""
        from kafka.errors import TopicAlreadyExistsError

        names = list(names)
        admin = self.admin()
        try:
            existing = set(admin.list_topics()) if exist_ok else set()
            todo = {
                name: {"num_partitions": partitions, "replication_factor": 1, "configs": dict(configs or {})}
                for name in names
                if name not in existing
            }
            if todo:
                try:
                    admin.create_topics(todo, timeout_ms=30_000, wait_for_metadata=True)
                except TopicAlreadyExistsError:
                    if not exist_ok:
                        raise
        finally:
            admin.close()

    # -- internals ----------------------------------------------------------------------------------------------

    def _config(self) -> dict[str, object]:
        assert self.workdir is not None
        config: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            "num.partitions": self.num_partitions,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "log.flush.interval.messages": 9223372036854775807,
        }
        config.update(self.extra_config)
        return config

    def _write_config(self) -> None:
        assert self.workdir is not None
        lines = [f"{key}={value}" for key, value in self._config().items()]
        (self.workdir / "server.properties").write_text("\n".join(lines) + "\n")
        (self.workdir / "log4j2.properties").write_text(_LOG4J2.format(level=self.log_level.lower()))

    def _java_cmd(self, java: str, main: str, *jvm_opts: str) -> list[str]:
        assert self.workdir is not None
        return [
            java,
            *jvm_opts,
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-cp",
            str(self.libs / "*"),
            main,
        ]

    def _format_storage(self, java: str) -> None:
        assert self.workdir is not None
        # Short-lived JVM: C1 only and serial GC start fastest.
        cmd = self._java_cmd(java, _STORAGE_TOOL, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
        cmd += ["format", "-t", self.cluster_id, "-c", str(self.workdir / "server.properties"), "--ignore-formatted"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise KafkaBrokerError(f"kafka storage format failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")

    def _cds_archive(self, java: str) -> Path | None:
        """Where this JVM + jar set's class-data-sharing archive lives (next to the jar dir, if writable)."""
        if not os.access(self.libs.parent, os.W_OK):
            return None
        key = hashlib.sha256(str(Path(java).resolve()).encode())
        for jar in sorted(self.libs.glob("*.jar")):
            key.update(f"{jar.name}:{jar.stat().st_size}".encode())
        return self.libs.parent / f"kafka-cds-{key.hexdigest()[:16]}.jsa"

    def _keep_cds_archive(self) -> None:
        """Move the archive a first (clean-exiting) broker dumped into place, atomically, for later starts."""
        dump, self._cds_dump = self._cds_dump, None
        if dump is None or self.workdir is None:
            return
        tmp = self.workdir / "cds.jsa"
        if tmp.is_file() and tmp.stat().st_size > 0 and not dump.exists():
            try:
                shutil.copyfile(tmp, dump.with_suffix(f".{os.getpid()}.tmp"))
                os.replace(dump.with_suffix(f".{os.getpid()}.tmp"), dump)
            except OSError:
                pass

    def _launch(self, java: str) -> None:
        assert self.workdir is not None
        opts = [
            f"-Xmx{self.heap}",
            f"-Xms{min(128, _megabytes(self.heap))}m",
            "-XX:+UseSerialGC" if (os.cpu_count() or 1) <= 2 else "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
        ]
        if self.fast_start:
            # C1 only: a test broker reaches "ready" ~30% sooner on few cores, at some cost in peak throughput.
            # A class-data-sharing archive of the broker's classes (dumped by the first run) saves ~2 s more.
            opts.append("-XX:TieredStopAtLevel=1")
            archive = self._cds_archive(java)
            if archive is not None and archive.is_file():
                opts += [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
            elif archive is not None:
                opts.append(f"-XX:ArchiveClassesAtExit={self.workdir / 'cds.jsa'}")
                self._cds_dump = archive
        cmd = self._java_cmd(java, _KAFKA_MAIN, *opts)
        cmd.append(str(self.workdir / "server.properties"))
        self._log_file = open(self.workdir / "broker.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the broker cleanly
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def _wait_ready(self, t0: float) -> None:
        """Wait until the broker answers a metadata request (kafka-python admin client) and lists itself."""
        assert self.proc is not None and self.port is not None
        deadline = t0 + self.start_timeout
        last_error: object = None
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise KafkaBrokerError(f"kafka broker exited with {code} during start; log tail:\n{self.log_tail()}")
            # The broker only accepts connections once it has caught up with the metadata log and is unfenced.
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except OSError as err:
                last_error = err
                time.sleep(0.1)
                continue
            try:
                admin = self.admin(request_timeout_ms=5_000)
                try:
                    brokers = admin.describe_cluster()["brokers"]
                finally:
                    admin.close()
                if brokers:
                    return
                last_error = "no brokers in metadata yet"
            except ImportError:
                raise
            except Exception as err:  # not ready yet: retry until the deadline
                if type(err).__name__ == "KafkaConfigurationError":
                    raise
                last_error = err
            time.sleep(0.2)
        raise KafkaBrokerError(
            f"kafka broker on {self.bootstrap} not ready after {self.start_timeout:.0f}s "
            f"(last error: {last_error!r}); log tail:\n{self.log_tail()}"
        )


def _megabytes(size: str) -> int:
    size = size.strip().lower()
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    if size[-1] in units:
        return max(1, int(float(size[:-1]) * units[size[-1]]))
    return max(1, int(size) // (1024 * 1024))


def _raise_keyboard_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.broker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    parser.add_argument("--topics", nargs="*", default=[], help="topics to create")
    parser.add_argument("--partitions", type=int, default=1, help="partitions per created topic")
    parser.add_argument("--auto-create-topics", action="store_true", help="auto.create.topics.enable=true")
    args = parser.parse_args(argv)
    broker = KafkaBroker(port=args.port, auto_create_topics=args.auto_create_topics, fetch_missing=True)
    # SIGTERM (e.g. from a supervisor) stops the broker cleanly, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)  # even where a shell started us with SIGINT ignored
    try:
        with broker:
            if args.topics:
                broker.create_topics(args.topics, partitions=args.partitions)
            print(f"kafka broker ready in {broker.start_seconds:.1f}s; log: {broker.log_path}", file=sys.stderr)
            print(broker.bootstrap, flush=True)
            print("Ctrl-C to stop", file=sys.stderr)
            while broker.proc is not None and broker.proc.poll() is None:
                time.sleep(0.5)
            print(f"kafka broker died; log tail:\n{broker.log_tail()}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0
    except KafkaBrokerError as err:
        print(err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
