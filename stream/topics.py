"""Kafka topics of distributed mode: names from the settings, created when missing.

Used by the Faust worker at start, by `synthweb snapshot` and by the crawler fleet, so whichever
starts first creates `crawl.jobs`, `pages.raw` and `pages.dead` with the configured partitions.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class KafkaUnavailable(RuntimeError):
    """The broker cannot be reached or refused a request; the message says which broker."""


def bootstrap_servers(settings) -> list[str]:
    """SYNTHWEB_KAFKA_BOOTSTRAP ("host:port,host:port") as a list."""
    value = settings.get("SYNTHWEB_KAFKA_BOOTSTRAP")
    servers = value if isinstance(value, list | tuple) else str(value or "").split(",")
    servers = [s.strip() for s in servers if s.strip()]
    if not servers:
        raise KafkaUnavailable("SYNTHWEB_KAFKA_BOOTSTRAP is empty")
    return servers


def topic_configs(settings) -> dict[str, dict[str, str]]:
    """Topic name -> topic-level configs. Raw pages carry whole HTML pages; dead letters carry them base64-encoded."""
    max_bytes = settings.getint("SYNTHWEB_MAX_MESSAGE_BYTES")
    dead_bytes = max_bytes * 4 // 3 + 64 * 1024
    return {
        settings.get("SYNTHWEB_TOPIC_JOBS"): {},
        settings.get("SYNTHWEB_TOPIC_PAGES"): {"max.message.bytes": str(max_bytes)},
        settings.get("SYNTHWEB_TOPIC_DEAD"): {"max.message.bytes": str(dead_bytes)},
    }


def ensure_topics(settings, timeout_s: float = 30.0) -> list[str]:
    """Create the jobs, pages and dead-letter topics that do not exist yet; return the names created."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    servers = bootstrap_servers(settings)
    partitions = settings.getint("SYNTHWEB_TOPIC_PARTITIONS")
    if partitions < 1:
        raise ValueError("SYNTHWEB_TOPIC_PARTITIONS must be at least 1")
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=servers,
            client_id="synthweb-topics",
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(min(timeout_s, 10) * 1000),
        )
    except KafkaError as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {','.join(servers)}: {type(exc).__name__}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        todo = {
            name: {"num_partitions": partitions, "replication_factor": _replication(admin), "configs": configs}
            for name, configs in topic_configs(settings).items()
            if name not in existing
        }
        if todo:
            try:
                admin.create_topics(todo, timeout_ms=int(timeout_s * 1000), wait_for_metadata=True)
            except TopicAlreadyExistsError:  # another process won the race
                pass
            log.info("created Kafka topics %s with %d partitions", sorted(todo), partitions)
        return sorted(todo)
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {','.join(servers)} refused: {type(exc).__name__}: {exc}") from exc
    finally:
        admin.close()


def _replication(admin) -> int:
    """Replication factor: 3 where the cluster has that many brokers, else all of them."""
    try:
        brokers = len(admin.describe_cluster()["brokers"])
    except Exception:
        brokers = 1
    return max(1, min(3, brokers))
