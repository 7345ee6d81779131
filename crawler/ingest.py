"""`synthweb ingest warc`: archive records through the same stages, resumable, or onto pages.raw.

Records are grouped into batches of SYNTHWEB_BATCH_SIZE pages. Each batch runs through
`Pipeline(SYNTHWEB_STAGES)` with the insert deduplication token `<source>@<first offset>`,
then the offset of its last record is committed to `ingest_progress`. A rerun reads from
the last committed record on (a file seek or an HTTP range request), so its batches
start where the interrupted run's next batch started: a batch stored but not committed
is stored again under the same token, which the store deduplicates.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
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
from synthweb.pipeline import Page, Pipeline
from synthweb.store import Store, StoreStage

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

    def publish(self, pages: list[Page]) -> None:
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

    def close(self) -> None:
        self.producer.close()


class IngestProgress:
    """A rich progress line per source: records read, records/s, pages stored and skipped."""

    def __init__(self, show: bool):
        self.progress = None
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[records]} records, {task.fields[rate]:.0f} records/s"),
                TextColumn("stored {task.fields[stored]}, skipped {task.fields[skipped]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )

    def __enter__(self):
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def add(self, name: str, total: int | None) -> int | None:
        if not self.progress:
            return None
        label = name if len(name) <= 40 else "…" + name[-39:]
        return self.progress.add_task(label, total=total, records=0, rate=0.0, stored=0, skipped=0)

    def finish(self, task) -> None:
        if self.progress and task is not None:
            total = self.progress.tasks[task].total
            self.progress.update(task, completed=total if total is not None else 1, total=total or 1)

    def update(self, task, offset: int, **fields) -> None:
        if self.progress and task is not None:
            self.progress.update(task, completed=offset, **fields)


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

    sink = KafkaSink(settings) if publish else None
    pipeline = None
    if sink is None:
        pipeline = Pipeline.from_settings(settings)
        store_stage = next((s for s in pipeline.stages if isinstance(s, StoreStage)), None)
        store = store_stage.store if store_stage else Store(settings.get("SYNTHWEB_DB"))
    else:
        store = Store(settings.get("SYNTHWEB_DB"))
    store.migrate()
    batch_size = max(1, settings.getint("SYNTHWEB_BATCH_SIZE", 64))
    max_bytes = settings.getint("DOWNLOAD_MAXSIZE", 10 * 1024 * 1024)
    summary: dict[str, Any] = {"records": 0, "pages": 0, "published": 0, "stored": 0, "ignored": 0}
    skipped: Counter[str] = Counter()
    failed: dict[str, str] = {}
    resumed: dict[str, int] = {}
    started = time.monotonic()
    try:
        with IngestProgress(show_progress) as progress:
            for source in sources:
                key = source_key(source)
                after, seek = store.committed_offset(key)
                if after >= 0:
                    resumed[source] = after
                task = progress.add(source, _size(source))
                read = 0
                source_started = time.monotonic()
                try:
                    with OpenSource(
                        source,
                        start=seek if after >= 0 else 0,
                        s3_endpoint=settings.get("SYNTHWEB_S3_ENDPOINT", ""),
                        timeout=settings.getfloat("DOWNLOAD_TIMEOUT", 60),
                        user_agent=settings.get("USER_AGENT", ""),
                    ) as opened:
                        records = read_records(
                            opened.stream,
                            snapshot or default_snapshot(source),
                            key,
                            base=opened.base,
                            after=after,
                            max_bytes=max_bytes,
                        )
                        for batch in record_batches(records, batch_size):
                            pages = [r.page for r in batch if r.page is not None]
                            if sink is not None:
                                sink.publish(pages)
                                summary["published"] += len(pages)
                            else:
                                pages = pipeline.process(pages, dedup_token=f"{key}@{batch[0].offset}")
                            store.commit_offset(key, batch[-1].offset, batch[-1].seek, len(batch))
                            read += len(batch)
                            summary["records"] += len(batch)
                            summary["pages"] += len(pages)
                            summary["ignored"] += len(batch) - len(pages)
                            for page in pages:
                                if page.skip:
                                    skipped[page.skip] += 1
                                elif sink is None:
                                    summary["stored"] += 1
                            rate = read / max(1e-6, time.monotonic() - source_started)
                            progress.update(
                                task,
                                batch[-1].offset,
                                records=read,
                                rate=rate,
                                stored=summary["stored"],
                                skipped=sum(skipped.values()),
                            )
                            if max_records is not None and summary["records"] >= max_records:
                                break
                except WarcSourceError as exc:
                    failed[source] = str(exc)  # reported by the caller, with the summary
                if max_records is not None and summary["records"] >= max_records:
                    summary["stopped_early"] = True
                    break
                if source not in failed:
                    progress.finish(task)
    finally:
        if pipeline is not None:
            pipeline.close()
        else:
            store.close()
        if sink is not None:
            sink.close()
    seconds = time.monotonic() - started
    summary.update(
        skipped=dict(sorted(skipped.items())),
        failed_sources=failed,
        resumed_after=resumed,
        seconds=round(seconds, 3),
        records_per_second=round(summary["records"] / seconds, 1) if seconds else 0.0,
    )
    return summary
