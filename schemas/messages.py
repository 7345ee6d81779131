"""Kafka message contract: encode, decode and validate against schemas/kafka/*.json.

Messages are UTF-8 JSON objects carrying `schema` and `version`; every producer
validates before sending and every consumer validates after receiving, so a bad
message is caught at the edge and never half-processed.
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from synthweb.pipeline import Page

SCHEMA_DIR = Path(__file__).resolve().parent / "kafka"
RAW_PAGE_FIELDS = ("url", "snapshot", "status", "content_type", "html", "skip", "skip_detail")


def kafka_producer(settings, client_id: str, **overrides):
    """The KafkaProducer every synthweb producer uses: acks=all, idempotent (a retry never duplicates or
    reorders a partition's messages), gzip, messages up to SYNTHWEB_MAX_MESSAGE_BYTES; `overrides` tune
    timeouts. kafka-python's own errors (e.g. NoBrokersAvailable) propagate."""
    from kafka import KafkaProducer

    value = settings.get("SYNTHWEB_KAFKA_BOOTSTRAP")
    servers = value if isinstance(value, list | tuple) else str(value or "").split(",")
    config = {
        "bootstrap_servers": [s.strip() for s in servers if s.strip()],
        "client_id": client_id,
        "acks": "all",
        "retries": 10,
        "enable_idempotence": True,
        "compression_type": "gzip",
        "linger_ms": 20,
        "max_request_size": settings.getint("SYNTHWEB_MAX_MESSAGE_BYTES"),
        "max_block_ms": 60_000,
    }
    return KafkaProducer(**(config | overrides))


class MessageError(ValueError):
    """A message that cannot be decoded or does not match its schema; `reason` says which."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@functools.cache
def validator(name: str):
    """The JSON Schema validator for schemas/kafka/<name>.json (e.g. "raw_page.v1")."""
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _encode(name: str, message: dict) -> bytes:
    errors = sorted(validator(name).iter_errors(message), key=lambda e: list(e.path))
    if errors:
        raise MessageError("invalid", f"{name}: {_describe(errors[0])}")
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _decode(name: str, data: bytes) -> dict:
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise MessageError("undecodable", f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(message, dict):
        raise MessageError("invalid", f"{name}: not a JSON object")
    kind, version = name.split(".v")
    if message.get("schema") == f"synthweb.{kind}" and message.get("version") != int(version):
        raise MessageError("unsupported_version", f"{kind} version {message.get('version')!r}, expected {version}")
    errors = sorted(validator(name).iter_errors(message), key=lambda e: list(e.path))
    if errors:
        raise MessageError("invalid", f"{name}: {_describe(errors[0])}")
    return message


def _describe(error) -> str:
    where = "/".join(str(p) for p in error.path) or "message"
    return f"{where}: {error.message[:300]}"


def _timestamp(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


@dataclass
class CrawlJob:
    """One site to crawl for one snapshot (a `crawl.jobs` message)."""

    snapshot: str
    domain: str
    seeds: list[str]
    max_pages: int
    requested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def encode_job(job: CrawlJob) -> bytes:
    message = {"schema": "synthweb.crawl_job", "version": 1, **asdict(job)}
    message["requested_at"] = _timestamp(job.requested_at)
    return _encode("crawl_job.v1", message)


def decode_job(data: bytes) -> CrawlJob:
    message = _decode("crawl_job.v1", data)
    return CrawlJob(
        snapshot=message["snapshot"],
        domain=message["domain"],
        seeds=list(message["seeds"]),
        max_pages=message["max_pages"],
        requested_at=datetime.fromisoformat(message["requested_at"]),
        job_id=message["job_id"],
    )


def encode_page(page: Page, job_id: str = "") -> bytes:
    """A fetched page as a `pages.raw` message (the output of the fetch stage)."""
    message = {"schema": "synthweb.raw_page", "version": 1, "job_id": job_id}
    message.update({name: getattr(page, name) for name in RAW_PAGE_FIELDS})
    message["fetched_at"] = _timestamp(page.fetched_at)
    return _encode("raw_page.v1", message)


def decode_page(data: bytes) -> Page:
    message = _decode("raw_page.v1", data)
    values = {name: message[name] for name in RAW_PAGE_FIELDS if name in message}
    return Page(fetched_at=datetime.fromisoformat(message["fetched_at"]), **values)


def encode_dead_letter(reason: str, detail: str, topic: str, partition: int, offset: int, original: bytes) -> bytes:
    """A `pages.dead` message keeping the original bytes, so nothing accepted is lost."""
    message = {
        "schema": "synthweb.dead_letter",
        "version": 1,
        "reason": reason,
        "detail": detail[:4000],
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "original_base64": base64.b64encode(original or b"").decode("ascii"),
        "at": _timestamp(datetime.now(UTC)),
    }
    return _encode("dead_letter.v1", message)


def decode_dead_letter(data: bytes) -> dict:
    message = _decode("dead_letter.v1", data)
    message["original"] = base64.b64decode(message["original_base64"])
    return message
