"""The one driver: batches of pages from any source through the pipeline, with one progress display.

A pulling source (an archive reader, the Wayback backfill, rescore) yields `Batch`es; `drive` sends
each through the processor (the stage `Pipeline`, or a sink with the same `process` method, such as
the Kafka publisher of `ingest --publish`), then calls the batch's `done` hook with what came out (so
an archive offset is committed only once its pages are stored), and counts the result on the one
`Progress` display. The pushing sources (Scrapy's item pipeline, the Faust agent) hand their batches
to the same `Pipeline.process`, one at a time, as their frameworks deliver them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from synthweb.pipeline import Page


class Processor(Protocol):
    def process(self, pages: list[Page], dedup_token: str | None = None) -> list[Page]: ...


@dataclass
class Batch:
    """Pages to process together, with the insert deduplication token that identifies them on a retry."""

    pages: list[Page]
    token: str | None = None
    task: Any = None  # the progress task this batch advances (a source file, a domain-year); None: none
    position: int | None = None  # the task's position after this batch (bytes read), when it has one
    done: Callable[[list[Page]], None] | None = None  # called with the processed pages


@dataclass
class Tally:
    """What came out of the pipeline: pages kept (stored, or published), skipped by reason, excluded."""

    pages: int = 0
    kept: int = 0
    excluded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, pages: list[Page]) -> None:
        self.pages += len(pages)
        for page in pages:
            if page.skip:
                self.skipped[page.skip] += 1
            else:
                self.kept += 1
                self.excluded += bool(page.excluded)


class Progress:
    """One rich display for every source: a line per task with its bar, pages/s, kept and skipped.

    `show` False draws nothing (and costs nothing); the counts still add up.
    """

    def __init__(self, show: bool, kept: str = "stored"):
        self.progress = None
        self.started: dict[int, float] = {}
        self.per_page: set[int] = set()
        self.tallies: dict[int, Tally] = {}
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[pages]} pages, {task.fields[rate]:.1f} pages/s"),
                TextColumn(f"{kept} {{task.fields[kept]}}, skipped {{task.fields[skipped]}}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )

    def __enter__(self) -> Progress:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()

    def task(self, label: str, total: float | None = None, per_page: bool = False) -> int | None:
        """A new line; `total` in the task's own unit (bytes of a file, domain-years), None if unknown;
        `per_page`: the unit is pages, so each processed page moves it on."""
        if not self.progress:
            return None
        label = label if len(label) <= 40 else "…" + label[-39:]
        task = self.progress.add_task(label, total=total, pages=0, rate=0.0, kept=0, skipped=0)
        self.started[task], self.tallies[task] = time.monotonic(), Tally()
        if per_page:
            self.per_page.add(task)
        return task

    def count(self, task, pages: list[Page], position: int | None = None) -> None:
        """Add a processed batch to its task; `position` is where the task now stands, if it has positions."""
        if not self.progress or task is None:
            return
        tally = self.tallies[task]
        tally.add(pages)
        rate = tally.pages / max(1e-6, time.monotonic() - self.started[task])
        advance = len(pages) if task in self.per_page else 0
        where = {"completed": position} if position is not None else {"advance": advance}
        fields = {"pages": tally.pages, "rate": rate, "kept": tally.kept, "skipped": sum(tally.skipped.values())}
        self.progress.update(task, **where, **fields)

    def advance(self, task, steps: float = 1) -> None:
        """Move a task on by `steps` of its own unit (a domain-year done) without pages."""
        if self.progress and task is not None:
            self.progress.update(task, advance=steps)

    def finish(self, task) -> None:
        if self.progress and task is not None:
            total = self.progress.tasks[task].total
            self.progress.update(task, completed=total if total is not None else 1, total=total or 1)


def drive(batches: Iterable[Batch], processor: Processor, progress: Progress | None = None) -> Tally:
    """Process every batch in order; return the tally of all of them."""
    tally = Tally()
    for batch in batches:
        out = processor.process(batch.pages, dedup_token=batch.token)
        if batch.done is not None:
            batch.done(out)
        tally.add(out)
        if progress is not None:
            progress.count(batch.task, out, batch.position)
    return tally
