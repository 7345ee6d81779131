"""Zero-shot LM statistics (kind "lm-features") over a tiny LLaMA built here, and the model store's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_token_stats import run_graph
from tiny_lm import SENTENCES, numpy_llama_logits, train_tokenizer, write_llama_checkpoint

from detectors import lm_build
from detectors.lm_features import LMStatistics, features_from_stats, head_logits
from detectors.onnx_llama import export_llama
from detectors.onnx_lm import read_config, read_weights
from detectors.runtime import Detector, DetectorError, load_detector, open_session
from detectors.token_stats import CONTRAST_NAMES, FEATURE_NAMES, contrast_features, numpy_token_stats, text_features

CHAT_TEMPLATE = "<|endoftext|>user: write a passage.\nassistant: "


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_feature_statistics_graph_computes_what_numpy_computes(dtype):
    rng = np.random.default_rng(7)
    logits = (rng.normal(size=(3, 9, 37)) * 3).astype(dtype)
    ids = rng.integers(0, 37, size=(3, 9))
    got = run_graph("features", logits, None, ids)
    want = numpy_token_stats("features", logits, None, ids)
    assert got.shape == want.shape == (3, 8, 5)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


def _direct_features(logits: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """The statistics straight from their definitions, in float64, for one unpadded text."""
    lp = logits[:-1] - logits[:-1].max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    p, n = np.exp(lp), len(ids) - 1
    ll = lp[np.arange(n), ids[1:]]
    rank = np.array([(lp[i] > ll[i]).sum() for i in range(n)])
    ent = -(p * lp).sum(-1)
    var = (p * lp**2).sum(-1) - ent**2
    z = (ll + ent) / np.sqrt(var)
    gap, uncertain = ll + ent, ent > np.median(ent)
    return {
        "mean_ll": ll.mean(), "std_ll": ll.std(), "mean_logrank": np.log1p(rank).mean(), "entropy": ent.mean(),
        "fast_detectgpt": (ll.sum() + ent.sum()) / np.sqrt(var.sum()), "binoculars": -ll.mean() / ent.mean(),
        "lrr": -ll.mean() / np.log1p(rank).mean(), "top1_rate": (rank == 0).mean(), "top10_rate": (rank < 10).mean(),
        "z_q10": np.quantile(z, 0.1), "z_below2": (z < -2).mean(), "z_q25": np.quantile(z, 0.25),
        "z_q50": np.median(z), "z_q75": np.quantile(z, 0.75), "z_mean": z.mean(), "z_std": z.std(),
        "ll_q10": np.quantile(ll, 0.1), "ll_q25": np.quantile(ll, 0.25), "std_gap": gap.std(),
        "gap_uncertain": gap[uncertain].mean(), "logrank_uncertain": np.log1p(rank)[uncertain].mean(),
    }  # fmt: skip


def _token_ll(logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    lp = logits[:-1] - np.log(np.exp(logits[:-1]).sum(-1, keepdims=True))
    return lp[np.arange(len(ids) - 1), ids[1:]]


def test_text_features_follow_their_definitions_and_ignore_padding():
    rng = np.random.default_rng(8)
    logits, ids = rng.normal(size=(2, 8, 23)) * 2, rng.integers(0, 23, size=(2, 8))
    mask = np.array([[1] * 8, [1] * 5 + [0] * 3])
    feats = text_features(numpy_token_stats("features", logits, None, ids), mask)
    for row, length in ((0, 8), (1, 5)):
        want = _direct_features(logits[row, :length], ids[row, :length])
        for k, name in enumerate(FEATURE_NAMES):
            assert feats[row, k] == pytest.approx(want[name], rel=1e-4), name
    # max_tokens counts only a text's first tokens: as if it had been cut there
    cut = text_features(numpy_token_stats("features", logits, None, ids), np.ones((2, 8)), max_tokens=5)
    short = text_features(numpy_token_stats("features", logits[:, :5], None, ids[:, :5]), np.ones((2, 5)))
    np.testing.assert_allclose(cut, short, rtol=1e-6)
    assert np.isnan(text_features(np.zeros((1, 3, 5)), np.array([[1, 0, 0, 0]]))).all()
    # skip drops the first predicted tokens of texts long enough to spare them (row 0: 7 > 2 * 3), not of others
    skipped = text_features(numpy_token_stats("features", logits, None, ids), mask, skip=3)
    assert skipped[0, 0] == pytest.approx(np.mean(_token_ll(logits[0], ids[0])[3:]), rel=1e-5)
    np.testing.assert_allclose(skipped[1], feats[1], rtol=1e-6)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A model store holding one tiny LLaMA under the name 'tiny', and a detector reading two of its features."""
    base = tmp_path_factory.mktemp("store")
    tok = train_tokenizer()
    ckpt = write_llama_checkpoint(base / "ckpt", tok, seed=3)
    model = base / "models" / "tiny" / "fp32"
    model.mkdir(parents=True)
    export_llama(ckpt, model / "model.onnx")
    tok.save(str(model / "tokenizer.json"))
    (model / "build.json").write_text(json.dumps({"build_version": lm_build.BUILD_VERSION}))
    det = base / "tiny-det"
    det.mkdir()
    head = {"features": ["tiny.mean_ll", "tiny.entropy"], "mean": [-5.0, 5.0], "scale": [1.0, 1.0],
            "coef": [1.5, -0.5], "intercept": 0.2}  # fmt: skip
    (det / "head.json").write_text(json.dumps(head))
    manifest = {"name": "tiny-det", "version": "1", "kind": "lm-features", "head": "head.json",
                "models": [{"name": "tiny", "max_tokens": 24}], "preprocess": ["collapse_whitespace"]}  # fmt: skip
    (det / "manifest.json").write_text(json.dumps(manifest))
    return {"base": base, "ckpt": ckpt, "tok": tok, "det": det, "head": head}


@pytest.fixture
def tiny_store(store, monkeypatch):
    monkeypatch.setenv("SYNTHWEB_MODELS", str(store["base"] / "models"))
    monkeypatch.setitem(lm_build.MODELS, "tiny", {"packages": [], "licence": "test"})
    return store


def test_lm_feature_detector_scores_with_its_head_on_the_reference_statistics(tiny_store):
    det = load_detector(str(tiny_store["det"]))
    assert det.kind == "lm-features"
    texts = SENTENCES[:4]
    cols = det.scorer.columns(texts)
    config, weights = read_config(tiny_store["ckpt"]), read_weights(tiny_store["ckpt"])
    for i, text in enumerate(texts):
        ids = det.scorer.models[0].token_ids([text])[0]
        assert len(ids) <= 24
        want = _direct_features(numpy_llama_logits(config, weights, np.array(ids)), np.array(ids))
        for name in FEATURE_NAMES:
            assert cols[f"tiny.{name}"][i] == pytest.approx(want[name], rel=1e-3, abs=1e-4), name
    p = det.score(texts + ["", "a"])
    z = head_logits(tiny_store["head"], cols)
    np.testing.assert_allclose(p[:4], 1 / (1 + np.exp(-z)), rtol=1e-6)
    assert p[4] == 0.5  # no next-token statistics: the neutral score


def test_features_from_stats_match_the_batched_graph(tiny_store):
    lm = load_detector(str(tiny_store["det"])).scorer.models[0]
    stats = lm.token_stats(SENTENCES, batch_size=3)  # lengths differ: padded batches
    one_by_one = np.concatenate([lm.features([t]) for t in SENTENCES])
    np.testing.assert_allclose(features_from_stats(stats), one_by_one, rtol=1e-4, atol=1e-5)


def test_an_unbuilt_model_is_one_line_naming_the_build_command(store, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHWEB_MODELS", str(tmp_path / "empty"))
    monkeypatch.setitem(lm_build.MODELS, "tiny", {"packages": [], "licence": "test"})
    with pytest.raises(DetectorError, match="synthweb detectors build tiny") as err:
        Detector(store["det"])  # not load_detector: it caches the loaded one
    assert "\n" not in str(err.value)
    with pytest.raises(DetectorError, match="unknown language model 'nope'"):
        lm_build.require_built("nope")


def test_score_without_built_models_is_one_line_naming_the_build(tmp_path):
    import os
    import subprocess
    import sys

    env = os.environ | {"SYNTHWEB_MODELS": str(tmp_path / "empty")}
    cmd = [sys.executable, "-m", "synthweb.cli", "score", "--detector", "smollm2", "-"]
    out = subprocess.run(cmd, input='{"text": "a text"}\n', capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "synthweb detectors build smollm2-135m" in out.stderr
    out = subprocess.run([sys.executable, "-m", "synthweb.cli", "detectors", "build", "nope"], capture_output=True,
                         text=True, env=env, timeout=120)  # fmt: skip
    assert out.returncode == 2 and "unknown language model 'nope'" in out.stderr


def test_a_model_shared_by_detectors_reads_each_text_once(tiny_store, monkeypatch):
    lm = load_detector(str(tiny_store["det"])).scorer.models[0]
    lm._memo.clear()
    runs = []
    real = lm._run
    monkeypatch.setattr(lm, "_run", lambda rows: runs.append(len(rows)) or real(rows))
    first = lm.features(SENTENCES[:3])
    again = lm.features(SENTENCES[:4])  # three seen, one new
    assert runs == [3, 1]
    np.testing.assert_array_equal(again[:3], first)


def test_a_member_detectors_score_is_a_logit_column_of_the_head(tiny_store, tmp_path):
    det_dir = tmp_path / "with-member"
    det_dir.mkdir()
    head = {"features": ["tiny.mean_ll", "lexical.logit"], "mean": [-5.0, 0.0], "scale": [1.0, 2.0],
            "coef": [1.0, 0.7], "intercept": -0.1}  # fmt: skip
    (det_dir / "head.json").write_text(json.dumps(head))
    manifest = json.loads((tiny_store["det"] / "manifest.json").read_text()) | {"members": ["lexical"]}
    (det_dir / "manifest.json").write_text(json.dumps(manifest))
    det = Detector(det_dir)
    texts = SENTENCES[:3]
    cols = det.scorer.columns(texts)
    lexical = load_detector("lexical").score(texts)
    np.testing.assert_allclose(cols["lexical.logit"], np.log(lexical / (1 - lexical)), rtol=1e-9)
    np.testing.assert_allclose(det.score(texts), 1 / (1 + np.exp(-head_logits(head, cols))), rtol=1e-9)
    (det_dir / "manifest.json").write_text(json.dumps(manifest | {"members": []}))
    with pytest.raises(DetectorError, match="lexical.logit"):
        Detector(det_dir)  # a column no model or member gives


def test_contrast_features_follow_their_definitions():
    rng = np.random.default_rng(5)
    plain, chat = rng.normal(size=(9, 5)).astype(np.float32), rng.normal(size=(9, 5)).astype(np.float32)
    got = contrast_features([plain, chat[:0] + plain[:0], plain], [chat, chat[:0], chat], skip=2)
    gain = chat[2:, 0].astype(np.float64) - plain[2:, 0]  # 9 > 2 * 2 tokens: the first two skipped
    want = [
        gain.mean(),
        gain.std(),
        np.quantile(gain, 0.25),
        np.quantile(gain, 0.75),
        (chat[2:, 2] - plain[2:, 2]).mean(),
    ]
    assert len(want) == len(CONTRAST_NAMES)
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    assert np.isnan(got[1]).all()  # no statistics: no contrasts
    np.testing.assert_array_equal(got[2], got[0])
    np.testing.assert_allclose(
        contrast_features([plain[:3]], [chat[:3]], skip=2)[0, 0], (chat[:3, 0] - plain[:3, 0]).mean(), rtol=1e-6
    )  # fmt: skip  (3 tokens, not over 2 * 2: none skipped)
    with pytest.raises(ValueError, match="one per token"):
        contrast_features([plain], [chat[:5]])


@pytest.mark.parametrize("start_token", [False, True], ids=["no-start-token", "start-token"])
def test_the_chat_reading_scores_the_same_tokens_after_the_template(tiny_store, tmp_path, start_token):
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer.from_str(tiny_store["tok"].to_str())
    if start_token:  # as SmolLM2's: every encoding starts with <|endoftext|>
        eot = tok.token_to_id("<|endoftext|>")
        tok.post_processor = TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", eot)])
    model_dir = tmp_path / "tiny"
    model_dir.mkdir()
    tok.save(str(model_dir / "tokenizer.json"))
    (model_dir / "model.onnx").symlink_to(tiny_store["base"] / "models" / "tiny" / "fp32" / "model.onnx")
    lm = LMStatistics("tiny", model_dir, open_session, 24, chat_template=CHAT_TEMPLATE)
    config, weights = read_config(tiny_store["ckpt"]), read_weights(tiny_store["ckpt"])
    texts = SENTENCES[:3]
    plain, chat = lm.token_stats(texts, batch_size=2), lm.token_stats(texts, batch_size=2, reading="chat")
    prefix = tok.encode(CHAT_TEMPLATE).ids
    for text, p, c in zip(texts, plain, chat, strict=True):
        ids = lm.token_ids([text])[0]
        row = np.array(prefix + ids[int(start_token) :])
        want = numpy_token_stats("features", numpy_llama_logits(config, weights, row)[None], None, row[None])[0]
        assert len(c) == len(p) == len(ids) - 1
        np.testing.assert_allclose(c, want[len(want) - len(c) :], rtol=1e-3, atol=1e-3)
        assert not np.allclose(c[:, 0], p[:, 0])  # the template changes what the model expects
    np.testing.assert_allclose(lm.contrasts(texts), contrast_features(plain, chat))


def test_a_head_reading_chat_contrasts_reads_the_text_twice(tiny_store, tmp_path, monkeypatch):
    det_dir = tmp_path / "chat-det"
    det_dir.mkdir()
    head = {"features": ["tiny.mean_ll", "tiny.chat_gain_mean"], "mean": [-5.0, 0.0], "scale": [1.0, 1.0],
            "coef": [1.0, 2.0], "intercept": 0.0}  # fmt: skip
    (det_dir / "head.json").write_text(json.dumps(head))
    (det_dir / "manifest.json").write_text((tiny_store["det"] / "manifest.json").read_text())
    with pytest.raises(DetectorError, match="no chat template"):
        Detector(det_dir)
    monkeypatch.setitem(lm_build.MODELS, "tiny", {"packages": [], "licence": "test", "chat_template": CHAT_TEMPLATE})
    monkeypatch.setattr("detectors.lm_features._LOADED", {})
    det = Detector(det_dir)
    lm = det.scorer.models[0]
    cols = det.scorer.columns(SENTENCES[:3])
    want = contrast_features(lm.token_stats(SENTENCES[:3]), lm.token_stats(SENTENCES[:3], reading="chat"))
    for k, name in enumerate(CONTRAST_NAMES):
        np.testing.assert_allclose(cols[f"tiny.{name}"], want[:, k])
    np.testing.assert_allclose(det.score(SENTENCES[:3]), 1 / (1 + np.exp(-head_logits(head, cols))), rtol=1e-9)
