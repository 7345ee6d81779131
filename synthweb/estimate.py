"""Machine-written share of a set of documents, corrected for the detector's error rates.

Everything works on score histograms (the detector's validation histograms and the
observed histogram of a slice), so the same code serves `synthweb estimate` on a file
and `synthweb report` on ClickHouse aggregates.

Adjusted classify-and-count (ACC; Forman 2008): with q the observed share of documents
scoring at or above the detector's threshold, and TPR/FPR measured on validation data,
the share is (q - FPR) / (TPR - FPR), clipped to [0, 1]. The 95% interval propagates
three uncertainties at once by drawing q, TPR and FPR from their Jeffreys posteriors
(Beta(k + 1/2, n - k + 1/2)): the sampling of the slice, and the finite validation sets
behind TPR and FPR. Draws are seeded, so the same data give the same interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DRAWS = 4000
SEED = 20221130  # the day ChatGPT was released; any fixed seed would do


@dataclass
class Estimate:
    share: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    n: int
    naive: float | None = None  # classify-and-count, uncorrected, shown for comparison

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


def _jeffreys(rng: np.random.Generator, k: float, n: float) -> np.ndarray:
    return rng.beta(k + 0.5, n - k + 0.5, size=DRAWS)


def adjusted_count(hist, calibration: Calibration) -> Estimate:
    """ACC share with a 95% interval from an observed score histogram."""
    hist = np.asarray(hist, dtype=float)
    if hist.shape != (calibration.bins,):
        raise ValueError(f"histogram has {hist.shape[0]} bins, calibration {calibration.bins}")
    n = int(hist.sum())
    if n == 0:
        return Estimate(None, None, None, "acc", 0)
    positives = float(hist[calibration.threshold_bin :].sum())
    tp, n_machine, fp, n_human = calibration.rates()
    q, tpr, fpr = positives / n, tp / n_machine, fp / n_human
    if tpr - fpr <= 0:
        raise ValueError("detector calibration has TPR <= FPR at its threshold; it cannot estimate shares")

    rng = np.random.default_rng(SEED)
    q_draws = _jeffreys(rng, positives, n)
    tpr_draws = _jeffreys(rng, tp, n_machine)
    fpr_draws = _jeffreys(rng, fp, n_human)
    spread = np.maximum(tpr_draws - fpr_draws, 1e-6)
    draws = np.clip((q_draws - fpr_draws) / spread, 0.0, 1.0)
    low, high = np.quantile(draws, [0.025, 0.975])
    share = float(np.clip((q - fpr) / (tpr - fpr), 0.0, 1.0))
    # The interval must contain the point estimate even where clipping skews the draws.
    return Estimate(share, float(min(low, share)), float(max(high, share)), "acc", n, naive=q)


def estimate_scores(scores, calibration: Calibration) -> Estimate:
    """ACC share of documents given their detector scores."""
    return adjusted_count(histogram(scores, calibration.bins), calibration)
