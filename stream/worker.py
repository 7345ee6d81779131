"""What a Faust worker does with one batch of `pages.raw` messages (synchronous; runs in a thread).

Exactly-once counting on top of Kafka's at-least-once delivery:

1. A page whose (snapshot, url) is already stored (in `pages` or `skipped_pages`), or repeated
   earlier in the batch, is dropped: "replayed" when its offset is at or below the partition's
   high-water mark (the highest offset in `pages` for "topic/partition": Kafka redelivered it after
   a crash or rebalance), else "duplicate" (a crawl job redelivered after a crawler crash sends the
   same pages again as new messages). A domain's pages share one partition (the key), so one
   worker sees them in order and this check per batch has no race.
2. The rest runs through the one stage list (SYNTHWEB_STAGES) with an insert_deduplication_token
   derived from topic/partition/offsets and the stored urls, so an exact retry is stored once.
3. Undecodable, invalid and failing messages go to `pages.dead` (stream/dead_letters.py), once:
   a redelivered message whose letter is already in the topic is counted "replayed".

Every redelivered message is looked at again, not skipped by its offset: a page that failed alone
is stored by no one, and a crash before its letter was sent must not lose it.

Offsets are committed by the Faust agent only after `process` returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from schemas.messages import MessageError, decode_page
from synthweb.pipeline import Page, Pipeline, run_with_retries

log = logging.getLogger(__name__)


@dataclass
class RawMessage:
    """One consumed message: where it came from and its bytes."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}"


@dataclass
class DeadLetter:
    message: RawMessage
    reason: str
    detail: str


class DeadLetters(Protocol):
    """Where dead letters go (stream.dead_letters.DeadLetterLog: the `pages.dead` topic)."""

    def already_sent(self, message: RawMessage) -> bool: ...

    def send(self, letter: DeadLetter) -> None: ...

    def settle(self, source: str, stored_up_to: int) -> None: ...

    def forget(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class BatchResult:
    """Counts per outcome, dead letters sent, seconds per stage."""

    outcomes: dict[str, int] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    retries: int = 0

    def count(self, outcome: str, n: int = 1) -> None:
        if n:
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n


class BatchProcessor:
    """Decode, de-duplicate and process batches with the shared stage pipeline.

    Not thread-safe: the Faust app calls it from one dedicated thread (chDB sessions and ONNX
    sessions stay on that thread).
    """

    def __init__(
        self, pipeline: Pipeline, dead_letters: DeadLetters, retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
    ):
        from synthweb.store import stage_store

        self.pipeline = pipeline
        self.dead_letters = dead_letters
        self.store = stage_store(pipeline)  # None: the stages store nothing (offsets and duplicates unknown)
        self.retry_delays = retry_delays
        self._hwm: dict[str, int] = {}
        # Since when the batch in hand keeps failing (the store is down, say); None while batches go through.
        # Read by the app's health and metrics from another thread: one float, replaced whole.
        self.failing_since: float | None = None

    @classmethod
    def from_settings(cls, settings) -> BatchProcessor:
        from stream.dead_letters import DeadLetterLog

        delays = tuple(float(s) for s in settings.getlist("SYNTHWEB_RETRY_SECONDS")) or (1.0,)
        return cls(Pipeline.from_settings(settings), DeadLetterLog.from_settings(settings), retry_delays=delays)

    def forget_offsets(self) -> None:
        """Drop cached high-water marks and sent letters (after a rebalance another worker may have done more)."""
        self._hwm = {}
        self.dead_letters.forget()

    def high_water_mark(self, source: str) -> int:
        if source not in self._hwm:
            # From `pages` only: the store stage writes skips first and pages last, so a crash between
            # the two inserts cannot leave a mark above unwritten rows.
            self._hwm[source] = self.store.stored_offset(source, tables=("pages",)) if self.store else -1
        return self._hwm[source]

    def process(self, messages: list[RawMessage]) -> BatchResult:
        """Handle one batch; returns when everything kept is stored (retrying a failing store forever)."""
        result = BatchResult()
        pages = self._decode(messages, result)
        # A shared embedded store is held from the check of what is stored to the insert: two workers'
        # batches never interleave there (a partition changing hands mid-batch is stored once).
        with self.store.turn() if self.store else contextlib.nullcontext():
            pages = self._drop_stored(pages, result)
            if pages:
                self._run_with_retries(pages, result)
        for message in messages:  # everything up to here is handled: the marks may move
            mark = self._hwm.get(message.source, -1)
            self._hwm[message.source] = max(mark, message.offset)
        for source in {m.source for m in messages}:
            self.dead_letters.settle(source, self._hwm[source])
        return result

    def _decode(self, messages: list[RawMessage], result: BatchResult) -> list[tuple[RawMessage, Page]]:
        pages = []
        for message in messages:
            try:
                page = decode_page(message.value)
            except MessageError as exc:
                self._dead_letter(DeadLetter(message, exc.reason, exc.detail), result)
                continue
            page.source, page.source_offset = message.source, message.offset
            pages.append((message, page))
        return pages

    def _drop_stored(self, pages: list[tuple[RawMessage, Page]], result: BatchResult) -> list[tuple[RawMessage, Page]]:
        from crawler.extract import site_keys  # the domain the extract stage stores with each page

        keys = {(p.snapshot, p.url) for _, p in pages}
        domains = {site_keys(p.url)[1] for _, p in pages}
        seen = self.store.stored_urls(keys, domains) if self.store else set()
        kept = []
        for message, page in pages:
            key = (page.snapshot, page.url)
            if key in seen:
                result.count("replayed" if message.offset <= self.high_water_mark(message.source) else "duplicate")
                continue
            seen.add(key)
            kept.append((message, page))
        return kept

    def _run_with_retries(self, pages: list[tuple[RawMessage, Page]], result: BatchResult) -> None:
        """Run the batch until it is stored (synthweb.pipeline.run_with_retries); a page failing alone is
        dead-lettered. While every page fails alone (the store is down) nothing returns, so nothing is
        acknowledged that was not stored."""

        def failed(exc: Exception) -> None:
            result.retries += 1
            if self.failing_since is None:
                self.failing_since = time.monotonic()

        alone = run_with_retries(lambda items: self._run(items, result), pages, self.retry_delays, on_failure=failed)
        for (message, _), exc in alone:
            self._dead_letter(DeadLetter(message, "processing_failed", f"{type(exc).__name__}: {exc}"), result)
        self.failing_since = None

    def _run(self, pages: list[tuple[RawMessage, Page]], result: BatchResult) -> None:
        # Fresh copies each attempt: stages change pages in place (all Page fields are immutable values).
        batch = [dataclasses.replace(p) for _, p in pages]
        token = dedup_token([m for m, _ in pages], [p.url for p in batch])
        done = self.pipeline.process(batch, dedup_token=token, timings=result.timings)
        skipped = sum(1 for p in done if p.skip)
        result.count("stored", len(done) - skipped)
        result.count("skipped", skipped)

    def _dead_letter(self, letter: DeadLetter, result: BatchResult) -> None:
        """Send a letter unless it is in the topic already; retry while Kafka cannot take it."""
        attempt = 0
        while True:
            try:
                if self.dead_letters.already_sent(letter.message):
                    result.count("replayed")
                    return
                self.dead_letters.send(letter)
                self.failing_since = None
                break
            except Exception as exc:
                log.warning("dead letter for %s@%d not sent (attempt %d): %s", letter.message.source,
                            letter.message.offset, attempt + 1, exc)  # fmt: skip
                result.retries += 1
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                time.sleep(self.retry_delays[min(attempt, len(self.retry_delays) - 1)])
                attempt += 1
        result.dead.append(letter)
        result.count("dead")

    def close(self) -> None:
        try:
            self.dead_letters.close()
        finally:
            self.pipeline.close()


def dedup_token(messages: list[RawMessage], urls: list[str]) -> str:
    """`topic/partition:first-last` ranges plus a digest of the urls inserted.

    The digest keeps two different row sets over the same offset range (after some were found
    already stored) from sharing a token, which would make ClickHouse drop the second as a retry.
    """
    ranges: dict[str, list[int]] = {}
    for m in messages:
        lo, hi = ranges.get(m.source, [m.offset, m.offset])
        ranges[m.source] = [min(lo, m.offset), max(hi, m.offset)]
    digest = hashlib.sha1("\n".join(urls).encode("utf-8")).hexdigest()[:16]
    return ",".join(f"{s}:{lo}-{hi}" for s, (lo, hi) in sorted(ranges.items())) + f":{digest}"
