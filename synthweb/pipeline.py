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


class Pipeline:
    """Stages composed as a plain list; `process` runs one batch through all of them."""

    def __init__(self, stages: list[Stage]):
        self.stages = stages

    @classmethod
    def from_settings(cls, settings, stage_classes: list[type[Stage]]) -> Pipeline:
        stages = []
        for stage_cls in stage_classes:
            check_requirements(stage_cls)
            try:
                stages.append(stage_cls.from_settings(settings))
            except NotConfigured as exc:
                log.info("stage %s switched off: %s", stage_cls.name, exc)
        return cls(stages)

    def process(self, pages: Iterable[Page], dedup_token: str | None = None) -> list[Page]:
        """Run one batch through every stage.

        `dedup_token` identifies the batch and goes to the stages whose `run` accepts it
        (the store), so a retried batch is stored once.
        """
        stream: Iterable[Page] = iter(pages)
        for stage in self.stages:
            if dedup_token is not None and _accepts_dedup_token(stage):
                stream = stage.run(stream, dedup_token=dedup_token)
            else:
                stream = stage.run(stream)
        return list(stream)

    def close(self) -> None:
        for stage in self.stages:
            stage.close()


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
