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

from detectors import calibration
from detectors.calibration import histogram
from synthweb import quantify

METHODS = quantify.METHODS
# For calibrations that name no method of their own (their detector was not measured on mixtures):
DEFAULT_METHOD = "pacc"  # lowest max and mean error across detectors on held-out mixtures (docs/estimation.md)
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
    fit_p: float | None = None  # p-value that the slice is a mixture of the reference classes (quantify)
    note: str | None = None  # why there is no share

    def to_dict(self) -> dict:
        return asdict(self)


# em and hdy fit the slice with the class histograms themselves, so noise in resampled calibration
# histograms biases their draws (upwards, measured): their draws are recentred on the point estimate.
# acc and pacc are ratios of means with little such bias; recentring them only cost coverage at 0.
RECENTRED = frozenset({"em", "hdy"})


class Calibration(calibration.Calibration):
    """A detector's calibration as the estimator reads it: the methods it names must be the estimator's."""

    known_methods = METHODS


def estimate_histogram(
    hist,
    calibration: Calibration,
    method: str | None = None,
    human: tuple[np.ndarray, float] | None = None,
    fit: bool = True,
    slice_draws: np.ndarray | None = None,
) -> Estimate:
    """The share of a slice from its score histogram, with a 95% bootstrap interval.

    `method` None takes the calibration's own (the one measured best for its detector, or with a
    control reference its `control_method`), else DEFAULT_METHOD.

    `human` replaces the calibration's human histogram by another human reference, e.g. the slice's
    pre-LLM control pages: (documents per bin, their worth in independent documents). Like the
    calibration's, its draws keep the counts seen and spread as wide as the effective size says.

    `fit` False skips the fit test (`fit_p` None): it does not depend on the method, so a caller
    estimating one slice with several methods needs it once.

    `slice_draws` (DRAWS x bins proportions) replaces the slice's Dirichlet draws where the slice's
    histogram is itself an estimate with an uncertainty of its own (two-phase scoring, synthweb.twophase);
    `hist` is then the estimated histogram at the size of the sample behind it.
    """
    method = method or (calibration.control_method if human is not None else None) or calibration.method
    method = method or DEFAULT_METHOD
    if method not in METHODS:
        raise ValueError(f"unknown estimation method {method!r}; choose among {', '.join(METHODS)}")
    hist = np.asarray(hist, dtype=float)
    if hist.shape != (calibration.bins,):
        raise ValueError(f"histogram has {hist.shape[0]} bins, calibration {calibration.bins}")
    n = int(round(hist.sum()))
    if n == 0:
        return Estimate(None, None, None, method, 0)
    human_counts, n_human = (calibration.hist_human, calibration.n_human) if human is None else human
    human_counts = np.asarray(human_counts, dtype=float)
    machine_counts, n_machine = calibration.hist_machine, calibration.n_machine
    k = calibration.threshold_bin
    tpr = machine_counts[k:].sum() / machine_counts.sum()
    fpr = human_counts[k:].sum() / human_counts.sum()
    naive = float(hist[k:].sum() / hist.sum())
    if method != "cc" and tpr - fpr <= 0:
        # Human texts here score like machine texts: no correction can separate them.
        note = f"human reference FPR {fpr:.3f} >= TPR {tpr:.3f}: the detector cannot tell the classes apart here"
        return Estimate(None, None, None, method, n, naive=naive, note=note)

    # em's pseudo-counts guard against empty bins, which the texts seen decide, not their effective number.
    seen_human, seen_machine = float(human_counts.sum()), float(machine_counts.sum())

    def run(h, u, m):
        return quantify.shares(method, h, u, m, k, n_human=seen_human, n_machine=seen_machine)

    share = float(run(hist / hist.sum(), human_counts / seen_human, machine_counts / seen_machine)[0])
    rng = np.random.default_rng(SEED)
    if slice_draws is None:
        slice_draws = quantify.dirichlet_draws(rng, hist, DRAWS)
    human_draws = quantify.inflated_draws(rng, human_counts, n_human, DRAWS)
    machine_draws = quantify.inflated_draws(rng, machine_counts, n_machine, DRAWS)
    draws = run(slice_draws, human_draws, machine_draws)
    fit_p = None
    if fit:
        fit_p = quantify.mixture_fit_p(
            rng, hist, human_counts / seen_human, machine_counts / seen_machine, human_draws, machine_draws,
            seen_human, seen_machine, dispersion=max(1.0, seen_human / n_human),
        )  # fmt: skip
        fit_p = round(fit_p, 4)
    if method in RECENTRED:
        draws = np.clip(draws - (np.median(draws) - share), 0.0, 1.0)
    low, high = np.quantile(draws, [0.025, 0.975])
    # The interval must contain the point estimate even where clipping skews the draws.
    low, high = float(min(low, share)), float(max(high, share))
    return Estimate(share, low, high, method, n, naive=naive, fit_p=fit_p)


def adjusted_count(hist, calibration: Calibration) -> Estimate:
    """ACC share with a 95% interval from an observed score histogram."""
    return estimate_histogram(hist, calibration, "acc")


def estimate_scores(scores, calibration: Calibration, method: str | None = None) -> Estimate:
    """Share of documents given their detector scores."""
    return estimate_histogram(histogram(scores, calibration.bins), calibration, method)
