"""The one stage contract shared by the embedded path and the Faust path.

A page flows fetch -> extract -> score -> store. Fetching is Scrapy's job (it pushes
pages as they arrive); everything after it is a plain list of `Stage`s that both the
embedded item pipeline and the Faust agent run on batches of pages, the way datatrove
composes `PipelineStep`s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

log = logging.getLogger(__name__)


class NotConfigured(Exception):
    """Raised by `Stage.from_settings` to switch a stage off (as in Scrapy)."""


@dataclass
class Score:
    """A second detector's score of a page: two-phase scoring's strong detector (synthweb.sampling)."""

    detector: str
    detector_version: str
    p_synthetic: float | None
    inclusion: float  # the probability with which this detector was picked to score the page


@dataclass
class Page:
    """One fetched page and everything the stages learn about it.

    A page with a non-empty `skip` is carried through every stage untouched and
    recorded by the store as skipped, so nothing accepted is silently dropped.
    """

    url: str
    snapshot: str = ""
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: int = 200
    content_type: str = ""
    html: str = ""  # decoded HTML; cleared after extraction
    skip: str = ""  # reason this page is not stored as a page ("too_large", "binary", ...)
    skip_detail: str = ""
    # extract
    text: str = ""
    title: str = ""
    published: date | None = None
    date_source: str = ""  # "metadata", "url", "content", "" when unknown
    lang: str = ""
    host: str = ""
    domain: str = ""
    tld: str = ""
    content_hash: str = ""
    word_count: int = 0
    # score
    detector: str = ""
    detector_version: str = ""
    p_synthetic: float | None = None
    excluded: str = ""  # stored but left out of shares: "short", "unsupported_lang"
    inclusion: float = 1.0  # the probability with which `detector` was picked to score this page
    strong: Score | None = None  # two-phase scoring: the strong detector's score, where the sample picked it
    # provenance in distributed mode: "pages.raw/<partition>" and the message offset
    source: str = ""
    source_offset: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Stage:
    """A pipeline step: takes pages, yields pages.

    Subclasses override `run`; they build themselves from the one settings object
    with `from_settings` and may raise `NotConfigured` there to switch off.
    `requires` lists optional Python modules the stage needs, checked at build time.
    """

    name: str = "stage"
    requires: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings) -> Stage:
        return cls()

    def run(self, pages: Iterable[Page]) -> Iterator[Page]:
        yield from pages

    def close(self) -> None:
        """Release resources (connections, sessions)."""


def check_requirements(stage_cls: type[Stage]) -> None:
    """Raise a clear ImportError naming the missing optional dependency."""
    import importlib.util

    for module in stage_cls.requires:
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"stage {stage_cls.name!r} needs the Python package {module!r}")


# Stage paths of earlier releases, still accepted in SYNTHWEB_STAGES (the detectors library holds no stage now).
MOVED_STAGES = {"detectors.stage.ScoreStage": "synthweb.score.ScoreStage"}


def stage_classes(settings) -> list[type[Stage]]:
    """The SYNTHWEB_STAGES classes, in order (dotted paths, as Scrapy's ITEM_PIPELINES)."""
    from scrapy.utils.misc import load_object

    paths = settings.getlist("SYNTHWEB_STAGES")
    for old in set(paths) & set(MOVED_STAGES):
        log.warning("SYNTHWEB_STAGES: %s is now %s", old, MOVED_STAGES[old])
    return [load_object(MOVED_STAGES.get(path, path)) for path in paths]


class Pipeline:
    """Stages composed as a plain list; `process` runs one batch through all of them."""

    def __init__(self, stages: list[Stage]):
        self.stages = stages

    @classmethod
    def from_settings(cls, settings, classes: list[type[Stage]] | None = None) -> Pipeline:
        """The configured stages (`classes`, default SYNTHWEB_STAGES), without those NotConfigured switches off."""
        stages = []
        for stage_cls in stage_classes(settings) if classes is None else classes:
            check_requirements(stage_cls)
            try:
                stages.append(stage_cls.from_settings(settings))
            except NotConfigured as exc:
                log.info("stage %s switched off: %s", stage_cls.name, exc)
        return cls(stages)

    def process(
        self, pages: Iterable[Page], dedup_token: str | None = None, timings: dict[str, float] | None = None
    ) -> list[Page]:
        """Run one batch through every stage.

        `dedup_token` identifies the batch (the Faust worker derives it from topic, partition and
        offsets) and goes to the stages whose `run` accepts it, so a retried batch is stored once.
        `timings`, when given, receives the seconds spent in each stage (by stage name), not
        counting the stages before it.
        """
        stream: Iterable[Page] = iter(pages)
        clocks: list[list[float]] = []
        for stage in self.stages:
            if dedup_token is not None and _accepts_dedup_token(stage):
                stream = stage.run(stream, dedup_token=dedup_token)
            else:
                stream = stage.run(stream)
            if timings is not None:
                clock = [0.0]
                clocks.append(clock)
                stream = _clocked(stream, clock)
        result = list(stream)
        if timings is not None:
            # Each clock includes the stages before it (generators pull through them): subtract.
            inner = 0.0
            for stage, (total,) in zip(self.stages, clocks, strict=True):
                timings[stage.name] = timings.get(stage.name, 0.0) + max(0.0, total - inner)
                inner = total
        return result

    def close(self) -> None:
        for stage in self.stages:
            stage.close()


def _clocked(pages: Iterable[Page], clock: list[float]) -> Iterator[Page]:
    """Yield from `pages`, adding the time spent producing each page to clock[0]."""
    import time

    it = iter(pages)
    while True:
        start = time.perf_counter()
        try:
            page = next(it)
        except StopIteration:
            clock[0] += time.perf_counter() - start
            return
        clock[0] += time.perf_counter() - start
        yield page


def _accepts_dedup_token(stage: Stage) -> bool:
    import inspect

    return "dedup_token" in inspect.signature(stage.run).parameters


def batched_pages(pages: Iterable[Page], size: int) -> Iterator[list[Page]]:
    """Group pages into lists of at most `size`."""
    batch: list[Page] = []
    for page in pages:
        batch.append(page)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run_alone(run, items: list) -> list[tuple[Any, Exception]]:
    """Call `run([item])` for each item: the (item, error) pairs that failed."""
    failed = []
    for item in items:
        try:
            run([item])
        except Exception as exc:
            failed.append((item, exc))
    return failed


class BatchFailing(RuntimeError):
    """Every item of a batch kept failing, alone too, for longer than the caller allows (the store is down, say)."""


def run_with_retries(
    run,
    items: list,
    delays: tuple[float, ...],
    give_up_after: float | None = None,
    on_failure=None,
    sleep=None,
) -> list[tuple[Any, Exception]]:
    """Call `run(items)` until it succeeds: retried after each of `delays`, then item by item.

    Returns the items that failed alone (the others went through; one that failed before the store came back
    midway is tried once more), for the caller to record. When every item fails alone the cause is not the
    items: the whole batch is tried again every `delays[-1]`
    seconds, forever, or until `give_up_after` seconds of failures (then BatchFailing). Both paths use it:
    the worker dead-letters what fails alone and never gives up (Kafka keeps the pages); the embedded
    crawl counts them failed and stops after a while. `on_failure(exc)` is told of each failed batch try.
    """
    import time

    sleep = sleep or time.sleep
    delays = tuple(delays) or (1.0,)
    failing_since = None
    attempt = 0
    while True:
        try:
            run(items)
            return []
        except Exception as exc:
            log.warning("batch of %d failed (attempt %d): %s", len(items), attempt + 1, exc)
            failing_since = failing_since or time.monotonic()
            if on_failure is not None:
                on_failure(exc)
        if attempt < len(delays):
            sleep(delays[attempt])
            attempt += 1
            continue
        failed = _run_alone(run, items)
        if len(failed) < len(items):
            # Some went through, so the store works now; it may have come back midway, after the first of these
            # failed: they fail alone only if they fail again.
            return _run_alone(run, [item for item, _ in failed])
        if give_up_after is not None and time.monotonic() - failing_since >= give_up_after:
            raise BatchFailing(
                f"every one of {len(items)} pages failed, alone too, for {time.monotonic() - failing_since:.0f}s; "
                f"last error: {failed[-1][1]}"
            )
        log.error("every page of the batch failed alone; retrying the batch in %.0fs", delays[-1])
        sleep(delays[-1])
