"""The share of a slice scored in two phases: the fast detector on every document, the strong one on a sample.

The target is the share the strong detector's calibration-corrected estimate would give had it scored
every document. Its score histogram over the whole slice is estimated by post-stratifying on the fast
detector's score (a regression estimator on the fast bins' indicators, the survey-sampling form of
prediction-powered inference): the slice's documents are cut into strata of neighbouring fast-score
bins, each holding at least `MIN_PER_STRATUM` strong-scored documents; within a stratum the strong
histogram is the sample's, each document weighted by 1 / its inclusion probability (Hajek); the
strata are added up with their full document counts. The fast detector only decides the strata, so
the estimate stays consistent whatever its errors; the better it ranks documents, the narrower the
interval. At a rate of 1 it is the strong detector's own histogram.

The interval's draws add the two phases' deviations: the slice's (a Dirichlet draw of the estimated
histogram, as a fully scored slice gets) and the sample's (a Bayesian bootstrap of each stratum's
strong-scored documents and one pseudo-document spread over the bins, scaled by sqrt(1 - the stratum's
sampling fraction)); `estimate_histogram` then puts the calibration's own uncertainty on top. Without the
pseudo-document a sample whose few documents all score human drew no machine text at all: 25 such
documents of 500 gave the interval [0, 0]. With it, [0, 0.10]; on the mixture bench at rate 0.05
(bench/two_phase_mixtures.py, zeroshot v5 as strong) coverage rose 0.929 -> 0.967 (docs/estimation.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthweb import quantify
from synthweb.estimate import DEFAULT_METHOD, DRAWS, SEED, Calibration, Estimate, estimate_histogram

PRIOR_DOCUMENTS = 1.0  # pseudo-documents, spread over the bins, in each stratum's phase-two draws
MIN_PER_STRATUM = 10  # strong-scored documents per post-stratum (fewer: merged with the neighbour)
# Below this many strong-scored documents a slice is estimated with em unless a method is asked for: on
# the mixture bench (500 documents at rate 0.05, 25 strong) hdy's intervals covered 0.78 of true shares,
# em's 0.95 (pacc 0.91, acc 0.95, em the lowest error); at rate 0.2 (100 strong) hdy covered 0.945.
SMALL_SAMPLE = 100
SMALL_SAMPLE_METHOD = "em"


@dataclass
class Cells:
    """A slice's documents counted by (fast bin, strong bin, inclusion probability).

    `strong_bin` is -1 for documents the strong detector did not score; `inclusion` is then unused.
    """

    fast_bin: np.ndarray
    strong_bin: np.ndarray
    inclusion: np.ndarray
    count: np.ndarray

    @classmethod
    def from_rows(cls, rows) -> Cells:
        """From (fast_bin, strong_bin, inclusion, count) rows."""
        a = np.asarray(rows, dtype=float).reshape(-1, 4)
        return cls(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2], a[:, 3])

    @property
    def documents(self) -> int:
        return int(self.count.sum())

    @property
    def strong_documents(self) -> int:
        return int(self.count[self.strong_bin >= 0].sum())


def strata(cells: Cells, bins: int, minimum: int = MIN_PER_STRATUM) -> np.ndarray:
    """Stratum of each fast bin: runs of neighbouring bins with at least `minimum` strong-scored documents."""
    sampled = np.bincount(cells.fast_bin[cells.strong_bin >= 0], cells.count[cells.strong_bin >= 0], bins)
    out, current, held = np.zeros(bins, dtype=int), 0, 0.0
    for b in range(bins):
        out[b] = current
        held += sampled[b]
        if held >= minimum:
            current, held = current + 1, 0.0
    if held < minimum and current > 0:  # a thin last run joins the one before
        out[out == current] = current - 1
    return out


def estimated_histogram(cells: Cells, bins: int, minimum: int = MIN_PER_STRATUM, draws: int = 0, rng=None):
    """(the strong histogram of the whole slice in documents, its draws as proportions or None).

    `draws` > 0 adds the two phases' bootstrap draws (DRAWS x bins, rows summing to 1).
    """
    stratum_of = strata(cells, bins, minimum)
    stratum = stratum_of[cells.fast_bin]
    k = int(stratum_of.max()) + 1
    population = np.bincount(stratum, cells.count, k)
    picked = cells.strong_bin >= 0
    s, b = stratum[picked], cells.strong_bin[picked]
    weight = cells.count[picked] / cells.inclusion[picked]
    within = np.zeros((k, bins))
    np.add.at(within, (s, b), weight)
    totals = within.sum(axis=1, keepdims=True)
    # A stratum without strong-scored documents (only when the whole slice has fewer than `minimum`)
    # borrows the slice's pooled sample.
    pooled = within.sum(axis=0) / within.sum()
    shares = np.where(totals > 0, within / np.where(totals > 0, totals, 1.0), pooled)
    hist = population @ shares
    if not draws:
        return hist, None
    rng = rng or np.random.default_rng(SEED)
    n = hist.sum()
    phase1 = quantify.dirichlet_draws(rng, hist, draws)
    # Phase two: a Bayesian bootstrap of each stratum's sampled documents (a cell of c documents
    # gets a Gamma(c) weight), its deviations shrunk by the finite-population factor.
    gammas = rng.standard_gamma(cells.count[picked], size=(draws, int(picked.sum()))) * (weight / cells.count[picked])
    deviation = np.zeros((draws, bins))
    sampled = np.bincount(s, cells.count[picked], k)
    for g in range(k):
        rows = s == g
        if not rows.any():
            continue
        onehot = np.zeros((int(rows.sum()), bins))
        onehot[np.arange(int(rows.sum())), b[rows]] = 1.0
        drawn = gammas[:, rows] @ onehot
        # One pseudo-document spread over the bins, as the phase-one draws get: a stratum whose few
        # sampled documents all score human may still hold machine text (measured in the docstring).
        unit = weight[rows].sum() / sampled[g]  # the stratum's mean weight per sampled document
        drawn += rng.standard_gamma(PRIOR_DOCUMENTS / bins, size=(draws, bins)) * unit
        drawn /= drawn.sum(axis=1, keepdims=True)
        fpc = np.sqrt(max(0.0, 1.0 - sampled[g] / population[g]))
        deviation += (population[g] / n) * fpc * (drawn - shares[g])
    out = np.clip(phase1 + deviation, 0.0, None)
    return hist, out / out.sum(axis=1, keepdims=True)


@dataclass
class TwoPhaseEstimate(Estimate):
    strong_documents: int = 0


def estimate_cells(cells: Cells, calibration: Calibration, method: str | None = None) -> TwoPhaseEstimate:
    """The slice's share from its two-phase cells, with a 95% interval over both phases and the calibration."""
    strong = cells.strong_documents
    if strong == 0:
        method = method or calibration.method or DEFAULT_METHOD
        note = "no strong-scored documents in this slice: `synthweb rescore --sample R` scores some"
        return TwoPhaseEstimate(None, None, None, method, cells.documents, note=note, strong_documents=0)
    if method is None and strong < SMALL_SAMPLE:
        method = SMALL_SAMPLE_METHOD
    hist, draws = estimated_histogram(cells, calibration.bins, draws=DRAWS)
    # At the sample's size, so the fit test weighs as many documents as were strong-scored.
    base = estimate_histogram(hist * (strong / hist.sum()), calibration, method, slice_draws=draws)
    values = base.to_dict() | {"n": cells.documents, "strong_documents": strong}
    return TwoPhaseEstimate(**values)
