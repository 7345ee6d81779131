"""Machine-written share of a set of documents, corrected for the detector's error rates.

Everything works on score histograms (the detector's validation histograms and the
observed histogram of a slice), so the same code serves `synthweb estimate` on a file
and `synthweb report` on ClickHouse aggregates. The methods are in `synthweb.quantify`
(cc, acc, pacc, em, hdy); docs/estimation.md gives the measured errors behind the default.

The 95% interval is a Bayesian bootstrap that resamples all three histograms at once: the
slice, and the human and machine validation histograms, so the finite calibration sets are
part of the uncertainty. Draws are seeded, so the same data give the same interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from synthweb import quantify

METHODS = quantify.METHODS
DEFAULT_METHOD = "pacc"  # lowest max and mean error, coverage near 95% on held-out mixtures (docs/estimation.md)
DRAWS = 2000
SEED = 20221130  # the day ChatGPT was released; any fixed seed would do


@dataclass
class Estimate:
    share: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    n: int
    naive: float | None = None  # classify-and-count, uncorrected, shown for comparison
    note: str | None = None  # why there is no share

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Calibration:
    """A detector's validation histograms and its decision threshold (a bin edge)."""

    bins: int
    hist_human: np.ndarray
    hist_machine: np.ndarray
    threshold: float

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(
            bins=int(data["bins"]),
            hist_human=np.asarray(data["hist_human"], dtype=float),
            hist_machine=np.asarray(data["hist_machine"], dtype=float),
            threshold=float(data["threshold"]),
        )

    @property
    def threshold_bin(self) -> int:
        return int(round(self.threshold * self.bins))

    def rates(self) -> tuple[int, int, int, int]:
        """(machine positives, machine total, human positives, human total) at the threshold."""
        k = self.threshold_bin
        return (
            int(self.hist_machine[k:].sum()),
            int(self.hist_machine.sum()),
            int(self.hist_human[k:].sum()),
            int(self.hist_human.sum()),
        )


def histogram(scores, bins: int) -> np.ndarray:
    """Counts of scores per bin; a score p falls in bin min(floor(p * bins), bins - 1).

    Scores are rounded to float32 first and an epsilon of 1e-4 absorbs float32 error, exactly as
    the `page_stats` view bins the Float32 scores it stores, so both sides agree on edges.
    """
    scores = np.asarray(scores, dtype=np.float32).astype(np.float64)
    index = np.minimum(np.floor(scores * bins + 1e-4).astype(int), bins - 1)
    return np.bincount(np.clip(index, 0, bins - 1), minlength=bins)


def estimate_histogram(
    hist,
    calibration: Calibration,
    method: str = DEFAULT_METHOD,
    human: tuple[np.ndarray, float] | None = None,
) -> Estimate:
    """The share of a slice from its score histogram, with a 95% bootstrap interval.

    `human` replaces the calibration's human histogram by another human reference (counts per bin,
    effective number of documents), e.g. the slice's pre-LLM control pages.
    """
    if method not in METHODS:
        raise ValueError(f"unknown estimation method {method!r}; choose among {', '.join(METHODS)}")
    hist = np.asarray(hist, dtype=float)
    if hist.shape != (calibration.bins,):
        raise ValueError(f"histogram has {hist.shape[0]} bins, calibration {calibration.bins}")
    n = int(hist.sum())
    if n == 0:
        return Estimate(None, None, None, method, 0)
    human_counts, n_human = (calibration.hist_human, calibration.hist_human.sum()) if human is None else human
    human_counts = np.asarray(human_counts, dtype=float)
    human_counts = human_counts / human_counts.sum() * n_human  # an effective n may differ from the sum
    machine_counts, n_machine = calibration.hist_machine, calibration.hist_machine.sum()
    k = calibration.threshold_bin
    tpr = machine_counts[k:].sum() / n_machine
    fpr = human_counts[k:].sum() / n_human
    naive = float(hist[k:].sum() / n)
    if method != "cc" and tpr - fpr <= 0:
        # Human texts here score like machine texts: no correction can separate them.
        note = f"human reference FPR {fpr:.3f} >= TPR {tpr:.3f}: the detector cannot tell the classes apart here"
        return Estimate(None, None, None, method, n, naive=naive, note=note)

    def run(h, u, m):
        return quantify.shares(method, h, u, m, k, n_human=n_human, n_machine=n_machine)

    share = float(run(hist / n, human_counts / n_human, machine_counts / n_machine)[0])
    rng = np.random.default_rng(SEED)
    draws = run(
        quantify.dirichlet_draws(rng, hist, DRAWS),
        quantify.dirichlet_draws(rng, human_counts, DRAWS),
        quantify.dirichlet_draws(rng, machine_counts, DRAWS),
    )
    low, high = np.quantile(draws, [0.025, 0.975])
    # The interval must contain the point estimate even where clipping skews the draws.
    return Estimate(share, float(min(low, share)), float(max(high, share)), method, n, naive=naive)


def adjusted_count(hist, calibration: Calibration) -> Estimate:
    """ACC share with a 95% interval from an observed score histogram."""
    return estimate_histogram(hist, calibration, "acc")


def estimate_scores(scores, calibration: Calibration, method: str = DEFAULT_METHOD) -> Estimate:
    """Share of documents given their detector scores."""
    return estimate_histogram(histogram(scores, calibration.bins), calibration, method)
