"""Every estimator on synthetic histograms whose true machine-written share is known."""

import numpy as np
import pytest

from synthweb import quantify
from synthweb.estimate import DEFAULT_METHOD, METHODS, Calibration, estimate_histogram, histogram

CORRECTED = [m for m in METHODS if m != "cc"]


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(11)
    return Calibration(
        bins=50,
        hist_human=histogram(rng.beta(2, 5, 2000), 50),
        hist_machine=histogram(rng.beta(5, 2, 2000), 50),
        threshold=0.5,
    )


def sample(calibration, share: float, n: int, seed: int) -> np.ndarray:
    """A slice of n documents drawn from the calibration's own class histograms."""
    rng = np.random.default_rng(seed)
    k = rng.binomial(n, share)
    human = calibration.hist_human / calibration.hist_human.sum()
    machine = calibration.hist_machine / calibration.hist_machine.sum()
    return rng.multinomial(k, machine) + rng.multinomial(n - k, human)


@pytest.mark.parametrize("method", CORRECTED)
@pytest.mark.parametrize("share", [0.0, 0.1, 0.3, 0.6])
def test_exact_mixture_is_recovered(calibration, method, share):
    hist = share * calibration.hist_machine / 2000 * 1000 + (1 - share) * calibration.hist_human / 2000 * 1000
    estimate = estimate_histogram(hist, calibration, method)
    # em smooths the class densities with half a document per bin, the one small bias allowed
    assert abs(estimate.share - share) < (0.02 if method == "em" else 0.005)
    assert estimate.ci_low <= share <= estimate.ci_high


@pytest.mark.parametrize("method", CORRECTED)
@pytest.mark.parametrize("share", [0.0, 0.05, 0.25, 0.5])
def test_sampled_mixture_within_tolerance_and_interval(calibration, method, share):
    estimate = estimate_histogram(sample(calibration, share, 1500, seed=int(share * 1000)), calibration, method)
    assert estimate.method == method and estimate.n > 1400
    assert abs(estimate.share - share) < 0.06
    assert estimate.ci_low <= share <= estimate.ci_high
    assert 0.0 <= estimate.ci_low <= estimate.share <= estimate.ci_high <= 1.0


def test_cc_is_biased_by_false_positives(calibration):
    estimate = estimate_histogram(sample(calibration, 0.0, 2000, seed=3), calibration, "cc")
    assert estimate.share > 0.05 and estimate.share == pytest.approx(estimate.naive)
    assert estimate.ci_low > 0.0  # the uncorrected interval misses the truth


@pytest.mark.parametrize("method", METHODS)
def test_shares_are_clipped_to_the_unit_interval(calibration, method):
    below = np.zeros(50)
    below[0] = 300  # more human-looking than the human validation texts
    above = np.zeros(50)
    above[49] = 300
    low, high = estimate_histogram(below, calibration, method), estimate_histogram(above, calibration, method)
    assert low.share == pytest.approx(0.0, abs=1e-6) and 0.0 <= low.ci_low <= low.ci_high <= 1.0
    assert high.share == pytest.approx(1.0, abs=1e-6) and 0.0 <= high.ci_low <= high.ci_high <= 1.0


def test_interval_includes_calibration_uncertainty(calibration):
    hist = sample(calibration, 0.3, 20000, seed=5)  # a huge slice: the calibration dominates the width
    small = Calibration(50, calibration.hist_human / 20, calibration.hist_machine / 20, 0.5)
    wide, narrow = estimate_histogram(hist, small, "acc"), estimate_histogram(hist, calibration, "acc")
    assert (wide.ci_high - wide.ci_low) > 2 * (narrow.ci_high - narrow.ci_low)


def test_vectorised_methods_agree_row_by_row(calibration):
    rng = np.random.default_rng(2)
    hists = quantify.dirichlet_draws(rng, sample(calibration, 0.2, 800, seed=1), 5)
    human = calibration.hist_human / calibration.hist_human.sum()
    machine = calibration.hist_machine / calibration.hist_machine.sum()
    for method in METHODS:
        together = quantify.shares(method, hists, human, machine, 25)
        one_by_one = [quantify.shares(method, h, human, machine, 25)[0] for h in hists]
        np.testing.assert_allclose(together, one_by_one, atol=1e-9)


def test_a_control_reference_replaces_the_lab_human_histogram(calibration):
    shifted = np.roll(calibration.hist_human, 8)  # this slice's humans score higher than the lab's
    hist = shifted.astype(float)
    lab = estimate_histogram(hist, calibration, "acc")
    control = estimate_histogram(hist, calibration, "acc", human=(shifted, 500))
    assert lab.share > 0.15 and control.share < 0.02


def test_a_control_reference_in_clusters_widens_the_interval_and_keeps_the_share(calibration):
    seen = np.roll(calibration.hist_human, 4) / 4  # 500 control documents seen
    hist = 0.7 * np.roll(calibration.hist_human, 4) + 0.3 * calibration.hist_machine
    for method in ("acc", "pacc", "em"):
        independent = estimate_histogram(hist, calibration, method, human=(seen, 500.0))
        clustered = estimate_histogram(hist, calibration, method, human=(seen, 100.0))
        assert clustered.share == pytest.approx(independent.share, abs=1e-9)
        assert clustered.ci_high - clustered.ci_low > 1.2 * (independent.ci_high - independent.ci_low), method


def test_unknown_method_and_empty_slice(calibration):
    with pytest.raises(ValueError, match="unknown estimation method"):
        estimate_histogram(np.ones(50), calibration, "median")
    assert estimate_histogram(np.zeros(50), calibration, DEFAULT_METHOD).share is None


def test_the_fit_test_accepts_true_mixtures_and_rejects_a_shifted_reference(calibration):
    # Slices drawn from the reference classes themselves: no misfit (at most 1 of 10 at the 5% level).
    fits = [estimate_histogram(sample(calibration, share, 2000, seed), calibration).fit_p for seed, share in enumerate(
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.2, 0.3, 0.05]
    )]  # fmt: skip
    assert sum(p < 0.05 for p in fits) <= 1 and all(0 < p <= 1 for p in fits)
    # Humans of a domain the lab never saw, scoring in the middle: no share of the two classes explains them.
    rng = np.random.default_rng(5)
    middle = histogram(rng.beta(6, 6, 1400), 50)
    hist = middle + sample(calibration, 1.0, 600, seed=1)
    estimate = estimate_histogram(hist, calibration)
    assert estimate.fit_p < 0.01
    # The same slice is no misfit when the reference is its own humans (a pre-LLM control).
    own = estimate_histogram(hist, calibration, human=(histogram(rng.beta(6, 6, 1400), 50), 1400.0))
    assert own.fit_p > 0.05


def test_dispersion_keeps_a_clustered_true_mixture_from_crying_misfit(calibration):
    human = calibration.hist_human / calibration.hist_human.sum()
    machine = calibration.hist_machine / calibration.hist_machine.sum()
    flagged = {1.0: 0, 5.0: 0}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        draws = [quantify.dirichlet_draws(rng, c, 1000) for c in (calibration.hist_human, calibration.hist_machine)]
        lumpy = 5.0 * sample(calibration, 0.3, 100, seed=seed)  # 100 documents, each in five copies
        for dispersion in flagged:
            p = quantify.mixture_fit_p(rng, lumpy, human, machine, *draws, 2000.0, 2000.0, dispersion=dispersion)
            flagged[dispersion] += p < 0.05
    assert flagged[1.0] >= 6 and flagged[5.0] <= 1, flagged
