"""`synthweb ingest warc`: archive records through the same stages, resumable, or onto pages.raw.

Records are grouped into batches of SYNTHWEB_BATCH_SIZE pages. Each batch runs through
`Pipeline(SYNTHWEB_STAGES)` with the insert deduplication token `<source>@<first offset>`,
then the offset of its last record is committed to `ingest_progress`. A rerun reads from
the last committed record on (a file seek or an HTTP range request), so its batches
start where the interrupted run's next batch started: a batch stored but not committed
is stored again under the same token, which the store deduplicates.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from crawler.warc import (
    OpenSource,
    Record,
    WarcSourceError,
    default_snapshot,
    read_records,
    source_key,
    text_as_html,
)
from synthweb.driver import Batch, Progress, drive
from synthweb.pipeline import Page, Pipeline
from synthweb.store import Store, store_of

log = logging.getLogger(__name__)


def record_batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """Group records so each group holds `size` pages; records without a page ride along."""
    batch: list[Record] = []
    pages = 0
    for record in records:
        batch.append(record)
        pages += record.page is not None
        if pages >= size:
            yield batch
            batch, pages = [], 0
    if batch:
        yield batch


class KafkaSink:
    """Publishes raw pages to pages.raw (acks=all, keyed by registered domain) for the Faust workers."""

    def __init__(self, settings):
        from schemas.messages import kafka_producer

        self.topic = settings.get("SYNTHWEB_TOPIC_PAGES")
        self.producer = kafka_producer(settings, "synthweb-ingest")

    def process(self, pages: list[Page], dedup_token: str | None = None) -> list[Page]:
        """Publish `pages` and wait for every acknowledgement (the driver's processor protocol)."""
        from crawler.extract import site_keys
        from schemas.messages import encode_page

        futures = []
        for page in pages:
            if page.text and not page.html:  # a WET text: v1 messages carry HTML only
                page.html = text_as_html(page.text)
            key = site_keys(page.url)[1].encode("utf-8") if page.url.startswith("http") else b""
            futures.append(self.producer.send(self.topic, key=key, value=encode_page(page)))
        self.producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises when a message was not acknowledged
        return pages

    def close(self) -> None:
        self.producer.close()


def _size(source: str) -> int | None:
    path = Path(source).expanduser()
    return path.stat().st_size if "://" not in source and path.is_file() else None


def ingest_archives(
    sources: list[str],
    settings,
    snapshot: str | None = None,
    publish: bool = False,
    max_records: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Ingest WARC/WET `sources`; return a summary (records, pages, skipped by reason, failed sources).

    `max_records` stops after that many records (whole batches), as an interrupted run would.
    """
    processor = KafkaSink(settings) if publish else Pipeline.from_settings(settings)
    store = store_of(processor, settings) if not publish else Store(settings.get("SYNTHWEB_DB"))
    store.migrate()
    batch_size = max(1, settings.getint("SYNTHWEB_BATCH_SIZE", 64))
    max_bytes = settings.getint("DOWNLOAD_MAXSIZE", 10 * 1024 * 1024)
    counts = {"records": 0, "ignored": 0}
    failed: dict[str, str] = {}
    resumed: dict[str, int] = {}
    stopped_early = False

    def batches(progress: Progress):
        nonlocal stopped_early
        for source in sources:
            key = source_key(source)
            after, seek = store.committed_offset(key)
            if after >= 0:
                resumed[source] = after
            task = progress.task(source, _size(source))
            try:
                with OpenSource(
                    source,
                    start=seek if after >= 0 else 0,
                    s3_endpoint=settings.get("SYNTHWEB_S3_ENDPOINT", ""),
                    timeout=settings.getfloat("DOWNLOAD_TIMEOUT", 60),
                    user_agent=settings.get("USER_AGENT", ""),
                ) as opened:
                    records = read_records(
                        opened.stream, snapshot or default_snapshot(source), key, base=opened.base, after=after,
                        max_bytes=max_bytes,
                    )  # fmt: skip
                    for batch in record_batches(records, batch_size):
                        pages = [r.page for r in batch if r.page is not None]
                        counts["records"] += len(batch)
                        counts["ignored"] += len(batch) - len(pages)
                        last = batch[-1]
                        commit = functools.partial(store.commit_offset, key, last.offset, last.seek, len(batch))
                        yield Batch(
                            pages, token=f"{key}@{batch[0].offset}", task=task, position=last.offset,
                            done=lambda _, commit=commit: commit(),
                        )  # fmt: skip
                        if max_records is not None and counts["records"] >= max_records:
                            break
            except WarcSourceError as exc:
                failed[source] = str(exc)  # reported by the caller, with the summary
            if max_records is not None and counts["records"] >= max_records:
                stopped_early = True
                return
            if source not in failed:
                progress.finish(task)

    started = time.monotonic()
    try:
        with Progress(show_progress, kept="published" if publish else "stored") as progress:
            tally = drive(batches(progress), processor, progress)
    finally:
        processor.close()
        if publish:
            store.close()
    seconds = time.monotonic() - started
    summary: dict[str, Any] = {
        "records": counts["records"], "pages": tally.pages, "published": tally.pages if publish else 0,
        "stored": 0 if publish else tally.kept, "ignored": counts["ignored"],
    }  # fmt: skip
    if stopped_early:
        summary["stopped_early"] = True
    summary.update(
        skipped=dict(sorted(tally.skipped.items())),
        failed_sources=failed,
        resumed_after=resumed,
        seconds=round(seconds, 3),
        records_per_second=round(counts["records"] / seconds, 1) if seconds else 0.0,
    )
    return summary
