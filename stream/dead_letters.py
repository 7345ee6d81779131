"""`pages.dead`, written once per message even when a worker crashes mid-batch or loses its partitions.

Kafka redelivers every message after the last committed offset, so a letter sent before a crash
would be sent again. Before the first letter of a source partition p, the log finds out which
letters of p are already in the topic: a worker sends p's letters to dead partition p % n only,
batch after batch, so reading that dead partition backwards from its end until a letter of p below
the group's committed offset of p finds every letter of p that can come round again (letters of
committed batches all lie below it). Letters it sends itself are added as they are acknowledged.

The processor sends a message's letter before it stores anything later of the same partition, so
the store's high-water mark never passes a message whose letter is not in Kafka. A send that fails
outright may still have reached the broker: the log re-reads the topic before the next try.
Two processes sending for the same partition at once (a worker frozen past its session timeout
that wakes up after a rebalance) can still both send; Faust fences neither.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from schemas.messages import MessageError, decode_dead_letter, encode_dead_letter

if TYPE_CHECKING:
    from stream.worker import DeadLetter, RawMessage

log = logging.getLogger(__name__)

SCAN_CHUNK = 500  # messages read per step backwards through a dead partition


class DeadLetterLog:
    """The dead-letter topic for one worker; used from its stages thread only (kafka-python, blocking)."""

    def __init__(self, bootstrap: list[str], topic: str, group: str, max_request_size: int, timeout_s: float = 30.0):
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.max_request_size = max_request_size
        self.timeout_s = timeout_s
        self._producer = None
        self._sent: dict[str, set[int]] = {}  # "topic/partition" -> offsets whose letter is in the topic
        self._floor: dict[str, int] = {}  # "topic/partition" -> offsets at or below it were dropped from _sent

    @classmethod
    def from_settings(cls, settings) -> DeadLetterLog:
        from stream.topics import bootstrap_servers

        max_bytes = settings.getint("SYNTHWEB_MAX_MESSAGE_BYTES")
        return cls(
            bootstrap_servers(settings),
            settings.get("SYNTHWEB_TOPIC_DEAD"),
            settings.get("SYNTHWEB_WORKER_GROUP"),
            max_request_size=max_bytes * 4 // 3 + 64 * 1024,  # a letter carries the page in base64
        )

    def already_sent(self, message: RawMessage) -> bool:
        """Whether this message's letter is in the topic (sent before a crash or a rebalance)."""
        if message.source not in self._sent or message.offset <= self._floor.get(message.source, -1):
            # Not known, or forgotten by settle(): a redelivery without a rebalance (the consumer went back to
            # the committed offset) reads the topic again.
            self._sent[message.source] = self._recover(message.topic, message.partition)
            self._floor.pop(message.source, None)
        return message.offset in self._sent[message.source]

    def send(self, letter: DeadLetter) -> None:
        """Send one letter and wait until the broker has it (acks=all); raises when it is not known to be there."""
        message = letter.message
        value = encode_dead_letter(
            letter.reason, letter.detail, message.topic, message.partition, message.offset, message.value
        )
        try:
            future = self._producer_for_sends().send(
                self.topic, key=message.key, value=value, partition=self._dead_partition(message.partition)
            )
            future.get(timeout=self.timeout_s)
        except Exception:
            self._sent.pop(message.source, None)  # it may have arrived all the same: read the topic again
            raise
        self._sent.setdefault(message.source, set()).add(message.offset)

    def settle(self, source: str, stored_up_to: int) -> None:
        """Drop remembered letters at or below the store's high-water mark (memory stays bounded); a message
        there that comes round again makes the log read the topic."""
        sent = self._sent.get(source)
        if sent and min(sent) <= stored_up_to:
            self._sent[source] = {offset for offset in sent if offset > stored_up_to}
            self._floor[source] = max(self._floor.get(source, -1), stored_up_to)

    def forget(self) -> None:
        """After a rebalance: partitions may come back with letters another worker sent."""
        self._sent = {}
        self._floor = {}

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=10)

    def _producer_for_sends(self):
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=f"{self.group}-dead-letters",
                acks="all",
                enable_idempotence=True,  # the client's own retries never write a letter twice
                max_request_size=self.max_request_size,
                max_block_ms=int(self.timeout_s * 1000),
            )
        return self._producer

    def _dead_partition(self, partition: int) -> int:
        return partition % self._dead_partitions()

    def _dead_partitions(self) -> int:
        partitions = self._producer_for_sends().partitions_for(self.topic)
        if not partitions:
            raise RuntimeError(f"dead-letter topic {self.topic!r} has no partitions")
        return len(partitions)

    def _recover(self, topic: str, partition: int) -> set[int]:
        """Offsets of `topic/partition` whose letters are in the topic at or above the committed offset."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,  # only to read the group's committed offset; assign() never joins it
            client_id=f"{self.group}-dead-letters-scan",
            enable_auto_commit=False,
            fetch_max_bytes=max(52428800, self.max_request_size),
            max_partition_fetch_bytes=self.max_request_size,
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        try:
            committed = consumer.committed(TopicPartition(topic, partition)) or 0
            dead = TopicPartition(self.topic, partition % self._dead_partitions())
            consumer.assign([dead])
            sent = _letters_since(consumer, dead, (topic, partition), committed, self.timeout_s)
        finally:
            consumer.close()
        log.info("dead letters of %s/%d already sent above offset %d: %d", topic, partition, committed, len(sent))
        return sent


def _letters_since(consumer, dead, source: tuple[str, int], committed: int, timeout_s: float) -> set[int]:
    """Offsets of the source's letters in one dead partition, read backwards until one below `committed`."""
    begin = consumer.beginning_offsets([dead])[dead]
    high = consumer.end_offsets([dead])[dead]
    sent: set[int] = set()
    while high > begin:
        low = max(begin, high - SCAN_CHUNK)
        for letter in reversed(_read(consumer, dead, low, high, timeout_s)):
            if (letter["topic"], letter["partition"]) != source:
                continue  # another partition's letter, or a crawler's rejected job
            if letter["offset"] < committed:
                return sent
            sent.add(letter["offset"])
        high = low
    return sent


def _read(consumer, tp, low: int, high: int, timeout_s: float) -> list[dict]:
    """The letters at offsets [low, high) of one partition, in order (undecodable ones left out)."""
    import time

    consumer.seek(tp, low)
    letters = []
    deadline = time.monotonic() + timeout_s
    while consumer.position(tp) < high:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {tp.topic}/{tp.partition} offsets {low}-{high} took over {timeout_s:.0f}s")
        for record in consumer.poll(timeout_ms=1000).get(tp, []):
            if record.offset >= high:
                break
            try:
                letters.append(decode_dead_letter(record.value))
            except (MessageError, ValueError, KeyError) as exc:
                log.warning("unreadable dead letter at %s/%d@%d: %s", tp.topic, tp.partition, record.offset, exc)
    return letters
