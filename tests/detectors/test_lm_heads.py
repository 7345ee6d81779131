"""The LM detectors' heads: a sum of one logistic head per source is one head.json the runtime reads."""

import numpy as np

from detectors.lm_features import head_logits
from detectors.lm_heads import blocks_of, family_key, fit_head, fit_sum_head


def _columns(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    cols = {
        "lm-a.x": y + rng.normal(0, 1.0, n),
        "lm-a.z": rng.normal(0, 1.0, n),
        "lm-b.x": 2 * y + rng.normal(0, 1.5, n),
        "member.logit": -y + rng.normal(0, 0.8, n),
    }
    return cols, y


def test_sources_are_the_prefixes_of_the_features_in_order():
    assert blocks_of(["b.x", "a.x", "b.y", "m.logit"]) == [["b.x", "b.y"], ["a.x"], ["m.logit"]]


def test_a_summed_head_is_one_linear_head_whose_logit_adds_each_sources_own_head():
    cols, y = _columns()
    features = list(cols)
    summed = fit_sum_head(cols, features, y, 1.0)
    parts = [fit_head(cols, block, y, 1.0) for block in blocks_of(features)]
    assert summed["features"] == features
    expected = sum(head_logits(h, cols) for h in parts)
    np.testing.assert_allclose(head_logits(summed, cols), expected, atol=1e-4)
    # A source's weights do not depend on the other sources (a joint fit would shift them).
    np.testing.assert_allclose(summed["coef"][:2], parts[0]["coef"], rtol=1e-9)
    joint = fit_head(cols, features, y, 1.0)
    assert not np.allclose(joint["coef"][:2], parts[0]["coef"], rtol=1e-3)
    # Each source ranks machine text up: the member's negative coefficient flips its column, as a joint fit would.
    assert summed["coef"][0] > 0 and summed["coef"][2] > 0 and summed["coef"][3] < 0


def test_held_out_table_names_tell_a_summed_head_from_a_joint_one():
    assert family_key("all models + minilm", "joint", 1.0) == "head all models + minilm C=1.0"
    assert family_key("all models + minilm", "sum", 10.0) == "head all models + minilm, summed per source C=10.0"
