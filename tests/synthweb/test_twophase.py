"""The two-phase estimator: exact at rate 1, unbiased and covering at lower rates whatever the fast detector."""

import numpy as np
import pytest

from synthweb.estimate import Calibration, estimate_histogram
from synthweb.twophase import Cells, estimate_cells, estimated_histogram, strata

BINS = 50


def calibration() -> Calibration:
    """Human scores centred low, machine high, with overlap; 400 documents each."""
    centres = (np.arange(BINS) + 0.5) / BINS
    human = np.exp(-((centres - 0.25) ** 2) / 0.02)
    machine = np.exp(-((centres - 0.75) ** 2) / 0.02)
    human, machine = 400 * human / human.sum(), 400 * machine / machine.sum()
    return Calibration.from_dict(
        {
            "bins": BINS,
            "threshold": 0.5,
            "hist_human": human.tolist(),
            "hist_machine": machine.tolist(),
            "method": "pacc",
        }  # fmt: skip
    )


def population(rng, n: int, share: float, fast_noise: float):
    """Strong bins drawn from the calibration's classes; fast bins the strong ones plus noise (or pure noise)."""
    cal = calibration()
    machine = rng.random(n) < share
    strong = np.where(
        machine,
        rng.choice(BINS, n, p=cal.hist_machine / cal.hist_machine.sum()),
        rng.choice(BINS, n, p=cal.hist_human / cal.hist_human.sum()),
    )
    if fast_noise is None:  # a fast detector that knows nothing
        fast = rng.integers(0, BINS, n)
    else:
        fast = np.clip(strong + rng.normal(0, fast_noise, n).round().astype(int), 0, BINS - 1)
    return fast, strong


def cells(fast, strong, picked, inclusion) -> Cells:
    n = len(fast)
    rows = np.stack([fast, np.where(picked, strong, -1), np.broadcast_to(inclusion, n), np.ones(n)], axis=1)
    return Cells.from_rows(rows)


def test_at_rate_one_it_is_the_strong_detectors_own_estimate():
    rng = np.random.default_rng(1)
    fast, strong = population(rng, 600, 0.3, 4)
    two = estimate_cells(cells(fast, strong, np.ones(600, bool), 1.0), calibration())
    one = estimate_histogram(np.bincount(strong, minlength=BINS), calibration())
    assert two.strong_documents == 600 and two.n == 600
    assert two.share == pytest.approx(one.share, abs=1e-9)
    assert two.ci_low == pytest.approx(one.ci_low, abs=0.02) and two.ci_high == pytest.approx(one.ci_high, abs=0.02)


def test_strata_hold_the_minimum_of_sampled_documents():
    rng = np.random.default_rng(2)
    fast, strong = population(rng, 400, 0.4, 3)
    picked = rng.random(400) < 0.15
    found = strata(cells(fast, strong, picked, 0.15), BINS, minimum=10)
    per = np.bincount(found[fast[picked]])
    assert per.min() >= 10 and len(per) > 2
    assert np.all(np.diff(found) >= 0)  # neighbouring bins only


@pytest.mark.parametrize("noise", [2, None], ids=["informative fast", "useless fast"])
def test_unbiased_with_unequal_probabilities_and_intervals_that_cover(noise):
    rng = np.random.default_rng(3)
    errors, covered, widths = [], [], []
    for rep in range(60):
        share = (0.1, 0.3, 0.5)[rep % 3]
        fast, strong = population(rng, 800, share, noise)
        # Unequal inclusion: documents of the first half at 0.3, the rest at 0.1 (auto's minimum, then its rate).
        inclusion = np.where(np.arange(800) < 400, 0.3, 0.1)
        picked = rng.random(800) < inclusion
        e = estimate_cells(cells(fast, strong, picked, inclusion), calibration())
        truth = estimate_histogram(np.bincount(strong, minlength=BINS), calibration(), fit=False).share
        errors.append(e.share - truth)
        covered.append(e.ci_low <= share <= e.ci_high)
        widths.append(e.ci_high - e.ci_low)
    assert abs(np.mean(errors)) < 0.02  # against the full-population strong estimate
    assert np.mean(covered) >= 0.85
    if noise is not None:
        assert np.mean(widths) < 0.5


def test_a_good_fast_detector_narrows_the_interval():
    rng = np.random.default_rng(4)
    fast, strong = population(rng, 2000, 0.3, 1)
    picked = rng.random(2000) < 0.1
    assisted = estimate_cells(cells(fast, strong, picked, 0.1), calibration())
    alone = estimate_cells(cells(rng.integers(0, BINS, 2000), strong, picked, 0.1), calibration())
    assert assisted.ci_high - assisted.ci_low < alone.ci_high - alone.ci_low


def test_no_strong_documents_gives_no_share_and_says_how_to_get_one():
    rng = np.random.default_rng(5)
    fast, strong = population(rng, 50, 0.3, 2)
    e = estimate_cells(cells(fast, strong, np.zeros(50, bool), 0.05), calibration())
    assert e.share is None and e.strong_documents == 0 and "rescore --sample" in e.note


def test_the_histogram_weights_by_inverse_inclusion():
    # Two fast bins, one stratum (too few picks to split): bin 0 picked at 1, bin 1 at 0.5.
    rows = [(0, 10, 1.0, 4), (1, 40, 0.5, 2), (1, -1, 0.0, 2)]
    hist, _ = estimated_histogram(Cells.from_rows(rows), BINS, minimum=100)
    # Hajek: weights 4 x 1 at bin 10, 2 / 0.5 = 4 at bin 40, over the 8 documents.
    assert hist[10] == pytest.approx(4.0) and hist[40] == pytest.approx(4.0) and hist.sum() == pytest.approx(8.0)


def test_a_small_sample_that_looks_all_human_still_leaves_room_for_machine_text():
    # 25 of 500 documents strong-scored, every one clearly human: the share is not known to be 0. Without
    # the pseudo-document in each stratum's draws the interval was [0, 0]; the rule of three says ~0.12.
    rng = np.random.default_rng(8)
    fast, strong = rng.integers(0, 25, 500), rng.integers(5, 15, 500)
    picked = np.zeros(500, bool)
    picked[rng.choice(500, 25, replace=False)] = True
    e = estimate_cells(cells(fast, strong, picked, 0.05), calibration())
    assert e.share == pytest.approx(0.0, abs=0.01) and e.ci_low == pytest.approx(0.0, abs=0.01)
    assert 0.05 < e.ci_high < 0.2
