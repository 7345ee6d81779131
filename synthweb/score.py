"""The "score" stage: P(synthetic) for each extracted page, with the detector's exclusions.

With a fast detector configured (SYNTHWEB_FAST_DETECTOR), scoring is two-phase: the fast detector
scores every page and the strong one (SYNTHWEB_DETECTOR) the pages its sample picks
(`synthweb.sampling`), each pick stored with its inclusion probability so shares can be weighted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from detectors.runtime import Detector, load_detector
from synthweb.pipeline import NotConfigured, Page, Score, Stage, batched_pages
from synthweb.sampling import GPU_PROVIDERS, StrongRate, parse_rate, sample_key


class ScoreStage(Stage):
    """Scores page texts in batches with the configured detector (and, two-phase, the strong one on a sample).

    Every non-empty text is scored; pages the detector is not meant for (too short,
    unsupported language) keep their score but get `excluded` set, so shares can leave
    them out without losing the record. Two-phase, a page is excluded by either detector's rules,
    so both score the same population.
    """

    name = "score"
    requires = ("onnxruntime",)

    def __init__(
        self,
        detector: Detector,
        batch_size: int = 64,
        strong: Detector | None = None,
        rate: StrongRate | None = None,
    ):
        self.detector = detector
        self.batch_size = max(1, int(batch_size))
        self.strong = strong
        self.rate = rate or StrongRate(1.0)
        rules = [d for d in (detector, strong) if d is not None]
        self.min_words = max(d.min_words for d in rules)
        languages = [set(d.languages) for d in rules if d.languages]
        self.languages = set.intersection(*languages) if languages else set()

    @classmethod
    def from_settings(cls, settings) -> ScoreStage:
        name = settings.get("SYNTHWEB_DETECTOR")
        if not name:
            raise NotConfigured("SYNTHWEB_DETECTOR is empty")
        batch = settings.getint("SYNTHWEB_BATCH_SIZE", 64)
        fast_name = settings.get("SYNTHWEB_FAST_DETECTOR")
        strong = load_detector(name)
        if not fast_name or fast_name == name:
            return cls(strong, batch)
        rate = parse_rate(settings.get("SYNTHWEB_STRONG_RATE", "auto"))
        cost = (strong.manifest.get("cost") or {}).get("cpu_ms_per_doc")
        policy = StrongRate(
            rate,
            min_documents=settings.getint("SYNTHWEB_STRONG_MIN_DOCUMENTS", 30),
            budget=settings.getfloat("SYNTHWEB_STRONG_BUDGET", 0.5),
            on_gpu=bool(set(strong.providers or ()) & set(GPU_PROVIDERS)),
            # The manifest's cost is wall time on 2 threads; the first batch's strong scoring measures the CPU.
            cost_hint=cost / 1000.0 if cost else None,
        )
        return cls(load_detector(fast_name), batch, strong=strong, rate=policy)

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
            if self.strong is not None:
                self._score_strong([p for p in todo if not p.excluded])
            yield from batch

    def _score_strong(self, pages: list[Page]) -> None:
        """Strong-score the pages whose sample key falls below their inclusion probability."""
        picked = []
        for page, inclusion in zip(pages, self.rate.inclusion(pages), strict=True):
            if sample_key(page.snapshot, page.content_hash) < inclusion:
                picked.append((page, inclusion))
        if not picked:
            return
        start = self.rate.clock()
        scores = self.strong.score([p.text for p, _ in picked], batch_size=self.batch_size)
        self.rate.spent(self.rate.clock() - start, len(picked))
        for (page, inclusion), score in zip(picked, scores, strict=True):
            page.strong = Score(self.strong.name, self.strong.version, float(score), inclusion)

    def _label(self, page: Page) -> None:
        if not page.text.strip():
            page.p_synthetic = None
            page.excluded = "empty"
            return
        page.detector = self.detector.name
        page.detector_version = self.detector.version
        if page.word_count < self.min_words:
            page.excluded = "short"
        elif self.languages and page.lang and page.lang not in self.languages:
            page.excluded = "unsupported_lang"
        else:
            page.excluded = ""
