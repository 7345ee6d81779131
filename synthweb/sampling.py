"""Which documents the strong detector scores: a reproducible Poisson sample with known inclusion probabilities.

Two-phase scoring (docs/estimation.md, "Two-phase scoring"): the fast detector scores every page; the
strong one scores a document when its sample key, a hash of (snapshot, content hash) uniform on [0, 1),
is below the document's inclusion probability. The key never changes, so a higher rate later
(`synthweb rescore --sample R`) picks a superset of the pages picked before, and the probability a
report weights a document by is the highest ever applied to it.

The probability itself comes from a `StrongRate`: a fixed rate, or `auto`, which keeps the strong
detector's CPU within a budget of the rest of the job's while every stratum (snapshot, domain) gets at
least a minimum number of strong-scored documents, and is 1 when the strong detector runs on a GPU.
"""

from __future__ import annotations

import hashlib
import time

from synthweb.pipeline import Page

AUTO = "auto"
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
# auto: strong-score at least this many documents of every (snapshot, domain) stratum, whatever they cost;
# smaller sites are scored in full. 30 strong documents give a share's interval about +-0.15 at worst.
MIN_DOCUMENTS = 30
BUDGET = 0.5  # auto: the strong detector's CPU time at most this fraction of the rest of the job's
# auto, before the first batch has shown the job's pace: CPU seconds per page of a crawl (measured ~0.01-0.02)
ASSUMED_REST = 0.01


def sample_key(snapshot: str, content_hash: str) -> float:
    """The document's uniform [0, 1) sample key: the first 8 bytes of SHA-256(snapshot NUL content_hash).

    ClickHouse computes the same number (`SAMPLE_KEY_SQL`), so SQL can tell which documents a rate picks.
    """
    digest = hashlib.sha256(f"{snapshot}\0{content_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


SAMPLE_KEY_SQL = "reinterpretAsUInt64(reverse(substring(SHA256(concat(snapshot, '\\0', content_hash)), 1, 8))) / 18446744073709551616"  # noqa: E501


def parse_rate(value) -> float | None:
    """A rate in (0, 1] from a number or "auto" (None); ValueError otherwise."""
    if value is None or str(value).strip().lower() == AUTO:
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"strong rate must be a number in (0, 1] or 'auto', not {value!r}") from None
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"strong rate must be in (0, 1] (or 'auto'), not {rate}")
    return rate


class StrongRate:
    """Decides each document's inclusion probability for the strong detector.

    `rate` None means auto: 1 on a GPU; on a CPU, budget x (the rest of the job's CPU seconds per
    page) / (the strong detector's CPU seconds per document), both measured as the job runs, except
    that the first `min_documents` documents of each (snapshot, domain) stratum are always included.
    `cost_hint` (seconds per document, e.g. the manifest's measured cost) stands in until the strong
    detector has been timed here.
    """

    def __init__(
        self,
        rate: float | None,
        min_documents: int = MIN_DOCUMENTS,
        budget: float = BUDGET,
        on_gpu: bool = False,
        cost_hint: float | None = None,
        clock=time.process_time,
    ):
        self.rate, self.min_documents, self.budget = rate, max(0, int(min_documents)), float(budget)
        self.on_gpu, self.cost_hint, self.clock = on_gpu, cost_hint, clock
        self.started: float | None = None  # the pace is measured from the first batch on, not from start-up
        self.pages = 0  # pages since then
        self.strong_seconds = 0.0
        self.strong_documents = 0
        self.seen: dict[tuple[str, str], int] = {}  # documents per stratum so far

    @property
    def auto(self) -> bool:
        return self.rate is None

    def current(self) -> float:
        """The rate auto would apply to a document past its stratum's minimum now."""
        if self.rate is not None:
            return self.rate
        if self.on_gpu:
            return 1.0
        cost = self.strong_seconds / self.strong_documents if self.strong_documents else self.cost_hint
        if not cost:
            return 1.0  # the strong detector's cost is unknown: this batch measures it
        if self.started is None or not self.pages:
            rest = ASSUMED_REST
        else:
            rest = max(0.0, self.clock() - self.started - self.strong_seconds) / self.pages
        return min(1.0, self.budget * rest / cost)

    def inclusion(self, pages: list[Page]) -> list[float]:
        """The inclusion probability of each page of a batch (scored pages only), counting them seen."""
        rate = self.current()
        if self.started is None:
            # Loading models and opening the store is not the crawl's pace: the clock starts at the first batch.
            self.started = self.clock()
        else:
            self.pages += len(pages)
        out = []
        for page in pages:
            stratum = (page.snapshot, page.domain)
            seen = self.seen.get(stratum, 0)
            self.seen[stratum] = seen + 1
            out.append(1.0 if self.auto and seen < self.min_documents else rate)
        return out

    def spent(self, seconds: float, documents: int) -> None:
        """Record the strong detector's CPU seconds for `documents` documents."""
        self.strong_seconds += seconds
        self.strong_documents += documents

    def describe(self) -> str:
        if self.rate is not None:
            return f"strong rate {self.rate:g}"
        if self.on_gpu:
            return "strong rate auto (GPU: every page)"
        return f"strong rate auto (budget {self.budget:g} of the job's CPU, at least {self.min_documents} per site)"
