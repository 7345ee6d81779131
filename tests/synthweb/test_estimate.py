import numpy as np
import pytest

from synthweb.estimate import Calibration, adjusted_count, estimate_histogram, estimate_scores, histogram


@pytest.fixture
def calibration():
    rng = np.random.default_rng(1)
    return Calibration(
        bins=50,
        hist_human=histogram(rng.beta(2, 6, 3000), 50),
        hist_machine=histogram(rng.beta(6, 2, 3000), 50),
        threshold=0.5,
    )


def mixture(share: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = int(round(share * n))
    return np.concatenate([rng.beta(6, 2, k), rng.beta(2, 6, n - k)])


def test_histogram_bins_edges():
    assert histogram([0.0, 0.019, 0.02, 0.999, 1.0], 50).tolist()[:2] == [2, 1]
    assert histogram([0.999, 1.0], 50)[49] == 2


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2, 0.4, 0.6, 1.0])
def test_acc_recovers_known_shares_within_its_interval(calibration, share):
    estimate = estimate_scores(mixture(share, 2000, seed=int(share * 100)), calibration, method="acc")
    assert estimate.method == "acc" and estimate.n == 2000
    assert abs(estimate.share - share) < 0.04
    assert estimate.ci_low <= share <= estimate.ci_high
    assert 0.0 <= estimate.ci_low <= estimate.share <= estimate.ci_high <= 1.0


def test_acc_corrects_the_naive_count(calibration):
    estimate = estimate_scores(mixture(0.0, 2000, seed=3), calibration)
    assert estimate.naive > 0.02  # false positives inflate the plain count
    assert estimate.share < estimate.naive


def test_interval_narrows_with_more_documents(calibration):
    small = estimate_scores(mixture(0.3, 100, seed=5), calibration)
    large = estimate_scores(mixture(0.3, 5000, seed=5), calibration)
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low)


def test_empty_slice_has_no_share(calibration):
    assert adjusted_count(np.zeros(50), calibration).share is None


def test_histogram_of_the_wrong_size_is_an_error(calibration):
    with pytest.raises(ValueError, match="bins"):
        adjusted_count(np.zeros(20), calibration)


def test_estimates_are_reproducible(calibration):
    scores = mixture(0.25, 500, seed=9)
    assert estimate_scores(scores, calibration) == estimate_scores(scores, calibration)


def test_effective_sizes_widen_the_interval_and_keep_the_share(calibration):
    import dataclasses

    clustered = dataclasses.replace(calibration, effective_human=300.0, effective_machine=600.0)
    assert (clustered.n_human, clustered.n_machine) == (300.0, 600.0)
    assert (calibration.n_human, calibration.n_machine) == (3000.0, 3000.0)
    for method in ("acc", "pacc", "em", "hdy"):
        iid = estimate_scores(mixture(0.3, 5000, seed=8), calibration, method=method)
        fewer = estimate_scores(mixture(0.3, 5000, seed=8), clustered, method=method)
        assert fewer.share == pytest.approx(iid.share, abs=1e-9)
        assert fewer.ci_high - fewer.ci_low > 1.25 * (iid.ci_high - iid.ci_low), method


def test_effective_sizes_round_trip_through_the_calibration_file():
    data = {"bins": 2, "hist_human": [3, 1], "hist_machine": [1, 3], "threshold": 0.5, "effective_human": 1.5}
    cal = Calibration.from_dict(data)
    assert (cal.n_human, cal.n_machine) == (1.5, 4.0)
    assert Calibration.from_dict({**data, "effective_human": None}).n_human == 4.0


def test_the_calibration_names_its_detectors_method(calibration):
    import dataclasses

    scores = mixture(0.3, 1000, seed=9)
    assert estimate_scores(scores, calibration).method == "pacc"  # DEFAULT_METHOD when none is named
    own = dataclasses.replace(calibration, method="em")
    assert estimate_scores(scores, own).method == "em"
    assert estimate_scores(scores, own, method="acc").method == "acc"  # --method still wins
    data = {"bins": 2, "hist_human": [3, 1], "hist_machine": [1, 3], "threshold": 0.5}
    assert Calibration.from_dict({**data, "method": "hdy"}).method == "hdy"
    with pytest.raises(ValueError, match="unknown method"):
        Calibration.from_dict({**data, "method": "vote"})


def test_a_control_reference_takes_the_calibrations_control_method(calibration):
    import dataclasses

    own = dataclasses.replace(calibration, method="em", control_method="pacc")
    hist = histogram(mixture(0.3, 1000, seed=9), 50)
    control = (calibration.hist_human, 500.0)
    assert estimate_histogram(hist, own).method == "em"
    assert estimate_histogram(hist, own, human=control).method == "pacc"
    assert estimate_histogram(hist, own, "acc", human=control).method == "acc"
    assert estimate_histogram(hist, dataclasses.replace(own, control_method=None), human=control).method == "em"
    data = {"bins": 2, "hist_human": [3, 1], "hist_machine": [1, 3], "threshold": 0.5}
    assert Calibration.from_dict({**data, "control_method": "acc"}).control_method == "acc"
    with pytest.raises(ValueError, match="unknown control_method"):
        Calibration.from_dict({**data, "control_method": "vote"})
