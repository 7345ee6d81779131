"""Quantification methods on score histograms, vectorised over bootstrap draws.

Every method sees only three histograms over the same score bins: the slice being measured,
and the detector's validation histograms for human and machine text (its calibration). That
is all ClickHouse keeps per slice, so the same code serves a JSON-lines file and the store.

Arrays are shaped (draws, bins) and hold proportions (rows sum to 1); each method returns one
machine-written share per row, clipped to [0, 1].

- cc:   classify and count: the share of documents at or above the threshold (biased by the
        detector's error rates; shown for comparison).
- acc:  adjusted classify and count (Forman 2008): (q - FPR) / (TPR - FPR).
- pacc: probabilistic ACC (Bella et al. 2010): the same correction on the mean score, with
        each bin standing for its midpoint.
- em:   the Saerens-Latinne-Decaestecker EM prior adjustment with posteriors from the
        calibration histograms (histogram-binning calibration). Its fixed point is the
        maximum-likelihood mixture weight of the two class-conditional histograms; the
        log-likelihood is concave in the share, so it is found by bisection on its derivative
        (to 1e-9, where EM would crawl when the classes overlap).
- hdy:  HDy (Gonzalez-Castro et al. 2013): the share whose mixture of the class histograms is
        nearest the slice in Hellinger distance; the median over several bin resolutions
        (10, 25 and 50 bins: the divisors of the stored 50 that the paper's 10..110 grid allows).

`mixture_fit_p` asks the question every method takes for granted: is the slice a mixture of the
two reference classes at all?
"""

from __future__ import annotations

import numpy as np

METHODS = ("cc", "acc", "pacc", "em", "hdy")
HDY_RESOLUTIONS = (10, 25, 50)
EM_SMOOTHING = 0.5  # pseudo-count per bin for the class-conditional densities (a bin empty in validation)
FIT_RESOLUTION = 10  # bins of the fit test: the stored 50 in fives (5 bins flagged 10% of true mixtures)
_ITERATIONS = 40  # bisection / golden-section steps: 2**-40 and 0.618**40 are far below any reported digit


def _rows(a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    return a[None, :] if a.ndim == 1 else a


def cc(hist, human, machine, threshold_bin: int) -> np.ndarray:
    """Share of documents in bins >= threshold_bin (the detector's positives)."""
    return np.clip(_rows(hist)[:, threshold_bin:].sum(axis=1), 0.0, 1.0)


def acc(hist, human, machine, threshold_bin: int) -> np.ndarray:
    q = cc(hist, human, machine, threshold_bin)
    tpr = _rows(machine)[:, threshold_bin:].sum(axis=1)
    fpr = _rows(human)[:, threshold_bin:].sum(axis=1)
    return np.clip((q - fpr) / np.maximum(tpr - fpr, 1e-6), 0.0, 1.0)


def mean_score(hist) -> np.ndarray:
    """Mean score of each row of proportion histograms, each bin at its midpoint (PACC's rule; the
    dashboard's SQL and `detector_calibrations` use it too)."""
    hist = _rows(hist)
    return hist @ ((np.arange(hist.shape[1]) + 0.5) / hist.shape[1])


def pacc(hist, human, machine, threshold_bin: int) -> np.ndarray:
    mean, mean_h, mean_m = mean_score(hist), mean_score(human), mean_score(machine)
    return np.clip((mean - mean_h) / np.maximum(mean_m - mean_h, 1e-6), 0.0, 1.0)


def _smoothed(counts_or_props: np.ndarray, n: np.ndarray | float) -> np.ndarray:
    counts = counts_or_props * np.reshape(n, (-1, 1))
    counts = counts + EM_SMOOTHING
    return counts / counts.sum(axis=1, keepdims=True)


def em(hist, human, machine, threshold_bin: int, n_human=1000.0, n_machine=1000.0) -> np.ndarray:
    """Maximum-likelihood share (the SLD EM fixed point), by bisection on the score function."""
    hist = _rows(hist)
    u = _smoothed(_rows(human), n_human)
    m = _smoothed(_rows(machine), n_machine)
    diff = m - u

    def slope(p):  # d/dp sum_b h_b log(p m_b + (1 - p) u_b), decreasing in p
        return (hist * diff / (u + p[:, None] * diff)).sum(axis=1)

    low, high = np.zeros(len(hist)), np.ones(len(hist))
    for _ in range(_ITERATIONS):
        mid = (low + high) / 2
        rising = slope(mid) > 0
        low, high = np.where(rising, mid, low), np.where(rising, high, mid)
    # The likelihood peaks on a boundary when its slope there points outwards.
    at_zero, at_one = slope(np.zeros(len(hist))) <= 0, slope(np.ones(len(hist))) >= 0
    return np.where(at_zero, 0.0, np.where(at_one, 1.0, np.clip((low + high) / 2, 0.0, 1.0)))


def _coarsen(a: np.ndarray, resolution: int) -> np.ndarray:
    return a.reshape(a.shape[0], resolution, a.shape[1] // resolution).sum(axis=2)


def _hellinger_share(hist, human, machine) -> np.ndarray:
    """Golden-section search of the convex 1 - sum sqrt(h (p m + (1 - p) u)) over p in [0, 1]."""
    sqrt_h = np.sqrt(hist)

    def loss(p):
        return -(sqrt_h * np.sqrt(np.maximum(human + p[:, None] * (machine - human), 0.0))).sum(axis=1)

    ratio = (np.sqrt(5) - 1) / 2
    a, b = np.zeros(len(hist)), np.ones(len(hist))
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(_ITERATIONS):
        left = fc < fd  # the minimum lies in [a, d]
        a, b = np.where(left, a, c), np.where(left, d, b)
        c_new, d_new = b - ratio * (b - a), a + ratio * (b - a)
        c, d = np.where(left, c_new, d), np.where(left, c, d_new)
        fc, fd = np.where(left, loss(c), fd), np.where(left, fc, loss(d))
    share = (a + b) / 2
    # Golden section never evaluates the ends; a minimum there is a share of exactly 0 or 1.
    zero, one = np.zeros(len(hist)), np.ones(len(hist))
    share = np.where(loss(zero) <= loss(share), 0.0, share)
    return np.where(loss(one) <= loss(share), 1.0, share)


def hdy(hist, human, machine, threshold_bin: int) -> np.ndarray:
    hist, human, machine = _rows(hist), _rows(human), _rows(machine)
    bins = hist.shape[1]
    resolutions = [r for r in HDY_RESOLUTIONS if bins % r == 0 and r <= bins] or [bins]
    shares = [_hellinger_share(_coarsen(hist, r), _coarsen(human, r), _coarsen(machine, r)) for r in resolutions]
    return np.clip(np.median(np.stack(shares), axis=0), 0.0, 1.0)


def shares(method: str, hist, human, machine, threshold_bin: int, n_human=1000.0, n_machine=1000.0) -> np.ndarray:
    """The share by `method` for each row of proportion histograms."""
    if method == "em":
        return em(hist, human, machine, threshold_bin, n_human, n_machine)
    try:
        function = {"cc": cc, "acc": acc, "pacc": pacc, "hdy": hdy}[method]
    except KeyError:
        raise ValueError(f"unknown estimation method {method!r}; choose among {', '.join(METHODS)}") from None
    return function(hist, human, machine, threshold_bin)


def mixture_fit_p(
    rng: np.random.Generator,
    hist,
    human,
    machine,
    human_draws,
    machine_draws,
    n_human: float,
    n_machine: float,
    dispersion: float = 1.0,
) -> float:
    """P-value of "this slice is a mixture of the two reference classes" (`hist` in documents).

    The statistic is the likelihood-ratio G^2 of the slice against the mixture at its maximum-likelihood
    share, over FIT_RESOLUTION coarse bins. Its null distribution comes from slices of the same size
    drawn from mixtures of the drawn class histograms (the calibration's uncertainty, as the interval
    sees it) and refit against the point histograms, so a small calibration does not cry misfit. A
    small p says the reference classes do not describe the slice (writing the lab never saw): its share
    is suspect whatever its interval says. `n_human` / `n_machine` are the documents seen (smoothing).

    `dispersion` widens the null for slices whose documents come in clusters (near-duplicates, one
    article in several versions): null slices are drawn at size n / dispersion and scaled back up, the
    quasi-likelihood reading of G^2. Estimates pass the human reference's design effect, so a slice
    clustered like the validation texts is not called a misfit (measured: without it, slices of the
    `hashed` detector's own validation pool were flagged 19-86% of the time).
    """
    hist = _rows(hist)
    n = float(hist.sum())
    human_s, machine_s = _smoothed(_rows(human), n_human), _smoothed(_rows(machine), n_machine)
    bins = hist.shape[1]
    resolution = FIT_RESOLUTION if bins % FIT_RESOLUTION == 0 else bins

    def g2(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        share = em(counts / n, human, machine, 0, n_human, n_machine)[:, None]
        observed = _coarsen(counts, resolution)
        expected = n * _coarsen(share * machine_s + (1.0 - share) * human_s, resolution)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2.0 * np.where(observed > 0, observed * np.log(observed / expected), 0.0).sum(axis=1), share

    statistic, share = g2(hist)
    truth = share * machine_draws + (1.0 - share) * human_draws
    size = max(1, int(round(n / dispersion)))
    simulated = rng.multinomial(size, truth / truth.sum(axis=1, keepdims=True)) * (n / size)
    null, _ = g2(simulated)
    return float((1 + np.sum(null >= statistic[0])) / (len(null) + 1))


def inflated_draws(rng: np.random.Generator, counts: np.ndarray, effective: float, draws: int) -> np.ndarray:
    """Dirichlet draws of `counts` whose spread is that of `effective` independent documents.

    Clustered counts (near-duplicates) carry less information than their sum: the deviations of
    the draws are scaled by sqrt(sum / effective), the design effect's standard-error factor. Drawing
    Dirichlet(counts scaled down) instead would also thin the sparse tail bins into spikes, which
    biases em and hdy on the draws (measured: their coverage fell).
    """
    counts = np.asarray(counts, dtype=float)
    out = dirichlet_draws(rng, counts, draws)
    factor = np.sqrt(counts.sum() / effective) if effective > 0 else 1.0
    if factor <= 1.0:
        return out
    centre = (counts + 1.0 / len(counts)) / (counts.sum() + 1.0)
    out = np.clip(centre + factor * (out - centre), 0.0, None)
    return out / out.sum(axis=1, keepdims=True)


def dirichlet_draws(rng: np.random.Generator, counts: np.ndarray, draws: int) -> np.ndarray:
    """Bayesian-bootstrap draws of the bin proportions behind `counts`: Dirichlet(counts + 1/bins).

    The weak prior (one pseudo-document spread over the bins) keeps a bin with no documents
    possible, so a slice with no positives still gets an interval of honest width.
    """
    counts = np.asarray(counts, dtype=float)
    gamma = rng.standard_gamma(counts + 1.0 / len(counts), size=(draws, len(counts)))
    return gamma / gamma.sum(axis=1, keepdims=True)
