import numpy as np
import onnxruntime as ort
import pytest

from detectors.token_stats import numpy_token_stats, reduce_token_stats, stats_graph


def run_graph(method, observer, performer, ids):
    types = tuple(
        "tensor(float16)" if a.dtype == np.float16 else "tensor(float)" for a in (observer, performer) if a is not None
    )
    session = ort.InferenceSession(
        stats_graph(method, performer is not None, types), providers=["CPUExecutionProvider"]
    )
    feed = {"observer": observer, "input_ids": ids} | ({"performer": performer} if performer is not None else {})
    return session.run(None, feed)[0]


@pytest.mark.parametrize("method", ["fast-detectgpt", "binoculars"])
@pytest.mark.parametrize("two_models", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_graph_computes_what_numpy_computes(method, two_models, dtype):
    rng = np.random.default_rng(3)
    observer = (rng.normal(size=(3, 7, 41)) * 3).astype(dtype)
    performer = (rng.normal(size=(3, 7, 41)) * 3).astype(dtype) if two_models else None
    ids = rng.integers(0, 41, size=(3, 7))
    got = run_graph(method, observer, performer, ids)
    want = numpy_token_stats(method, observer, performer, ids)
    assert got.shape == want.shape == (3, 6, 3 if method == "fast-detectgpt" else 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_fast_detectgpt_statistics_match_their_definition():
    rng = np.random.default_rng(4)
    logits, ids = rng.normal(size=(1, 5, 11)), rng.integers(0, 11, size=(1, 5))
    stats = numpy_token_stats("fast-detectgpt", logits, None, ids)[0]
    lp = logits[0, :-1] - np.log(np.exp(logits[0, :-1]).sum(-1, keepdims=True))
    p = np.exp(lp)
    np.testing.assert_allclose(stats[:, 0], lp[np.arange(4), ids[0, 1:]], rtol=1e-5)
    np.testing.assert_allclose(stats[:, 1], (p * lp).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(stats[:, 2], (p * lp**2).sum(-1) - (p * lp).sum(-1) ** 2, rtol=1e-4, atol=1e-5)


def test_reduction_counts_attended_positions_only():
    stats = np.array([[[2.0, 4.0], [4.0, 4.0], [100.0, 1.0]], [[1.0, 2.0], [7.0, 7.0], [7.0, 7.0]]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])  # row 0: 3 tokens, 2 predictions; row 1: 1 prediction
    raw = reduce_token_stats("binoculars", stats, mask)
    assert raw == pytest.approx([6.0 / 8.0, 0.5])
    assert np.isnan(reduce_token_stats("binoculars", stats, np.array([[1, 0, 0, 0], [0, 0, 0, 0]]))).all()
    fast = reduce_token_stats("fast-detectgpt", np.array([[[1.0, -1.0, 4.0], [0.0, -2.0, 5.0]]]), np.ones((1, 3)))
    assert fast == pytest.approx([(2.0 + 2.0) / 3.0])


def test_an_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown likelihood method"):
        stats_graph("detectgpt", False, ("tensor(float)",))
