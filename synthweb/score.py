"""The "score" stage: P(synthetic) for each extracted page, with the detector's exclusions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from detectors.runtime import Detector, load_detector
from synthweb.pipeline import NotConfigured, Page, Stage, batched_pages


class ScoreStage(Stage):
    """Scores page texts in batches with the configured detector.

    Every non-empty text is scored; pages the detector is not meant for (too short,
    unsupported language) keep their score but get `excluded` set, so shares can leave
    them out without losing the record.
    """

    name = "score"
    requires = ("onnxruntime",)

    def __init__(self, detector: Detector, batch_size: int = 64):
        self.detector = detector
        self.batch_size = max(1, int(batch_size))

    @classmethod
    def from_settings(cls, settings) -> ScoreStage:
        name = settings.get("SYNTHWEB_DETECTOR")
        if not name:
            raise NotConfigured("SYNTHWEB_DETECTOR is empty")
        return cls(load_detector(name), settings.getint("SYNTHWEB_BATCH_SIZE", 64))

    def run(self, pages: Iterable[Page]) -> Iterator[Page]:
        for batch in batched_pages(pages, self.batch_size):
            todo = [p for p in batch if not p.skip and p.text.strip()]
            if todo:
                scores = self.detector.score([p.text for p in todo], batch_size=self.batch_size)
                for page, score in zip(todo, scores, strict=True):
                    page.p_synthetic = float(score)
            for page in batch:
                if not page.skip:
                    self._label(page)
            yield from batch

    def _label(self, page: Page) -> None:
        if not page.text.strip():
            page.p_synthetic = None
            page.excluded = "empty"
            return
        det = self.detector
        page.detector = det.name
        page.detector_version = det.version
        if page.word_count < det.min_words:
            page.excluded = "short"
        elif det.languages and page.lang and page.lang not in det.languages:
            page.excluded = "unsupported_lang"
        else:
            page.excluded = ""
