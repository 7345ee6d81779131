"""Zero-shot likelihood detectors (Fast-DetectGPT, Binoculars) over tiny random GPT-2 models built here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_lm import SENTENCES, numpy_gpt2_logits, train_tokenizer, write_gpt2_checkpoint

from detectors.calibrate import calibrate_detector, fit_logistic
from detectors.export import export_checkpoint
from detectors.onnx_lm import read_config, read_weights
from detectors.runtime import SHIPPED, Detector, DetectorError, load_detector
from synthweb.pipeline import Page
from synthweb.score import ScoreStage

EDGE_TEXTS = ["", "a", "Hi", "word " * 400, "Ünïcödé – “quotes” and emoji 🙂 survive byte-level BPE."]


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """Two tiny GPT-2 checkpoints sharing a tokenizer, and the detectors exported from them."""
    base = tmp_path_factory.mktemp("lms")
    tok = train_tokenizer()
    observer = write_gpt2_checkpoint(base / "observer", tok, seed=1)
    performer = write_gpt2_checkpoint(base / "performer", tok, seed=2, n_layer=1)
    return {
        "tok": tok,
        "observer": observer,
        "performer": performer,
        "fast": export_checkpoint(observer, base / "fast", max_tokens=40),
        "bino": export_checkpoint(observer, base / "bino", performer=performer, max_tokens=40),
    }


def _logp(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _reference(checkpoint, ids):
    return _logp(numpy_gpt2_logits(read_config(checkpoint), read_weights(checkpoint), np.array(ids))[:-1])


def test_fast_detectgpt_matches_reference_formula(lms):
    det = load_detector(str(lms["fast"]))
    assert det.kind == "likelihood" and det.scorer.method == "fast-detectgpt"
    raw = det.scorer.raw_scores(SENTENCES[:3], batch_size=2)
    for text, got in zip(SENTENCES[:3], raw, strict=True):
        ids = det.scorer.token_ids([text])[0]
        lp = _reference(lms["observer"], ids)  # [T-1, V], float64
        p = np.exp(lp)
        ll = lp[np.arange(len(ids) - 1), ids[1:]]
        mean = (p * lp).sum(-1)
        var = (p * lp**2).sum(-1) - mean**2
        assert got == pytest.approx((ll.sum() - mean.sum()) / np.sqrt(var.sum()), rel=1e-4, abs=1e-4)


def test_binoculars_two_models_matches_reference_formula(lms):
    det = load_detector(str(lms["bino"]))
    assert det.scorer.method == "binoculars" and det.scorer.performer is not det.scorer.observer
    raw = det.scorer.raw_scores(SENTENCES[3:], batch_size=3)
    for text, got in zip(SENTENCES[3:], raw, strict=True):
        ids = det.scorer.token_ids([text])[0]
        lp_obs, lp_perf = _reference(lms["observer"], ids), _reference(lms["performer"], ids)
        ppl = -lp_perf[np.arange(len(ids) - 1), ids[1:]].mean()
        x_ppl = -(np.exp(lp_obs) * lp_perf).sum(-1).mean()
        assert got == pytest.approx(ppl / x_ppl, rel=1e-4)
    # Two different models give a different score than the observer alone would.
    assert not np.allclose(raw, load_detector(str(lms["fast"])).scorer.raw_scores(SENTENCES[3:]))


@pytest.mark.parametrize("which", ["fast", "bino"])
def test_scores_finite_in_unit_interval_deterministic_and_batch_invariant(lms, which):
    det = load_detector(str(lms[which]))
    texts = SENTENCES + EDGE_TEXTS
    one_by_one = det.score(texts, batch_size=1)
    batched = det.score(texts, batch_size=5)  # mixed lengths: padded batches
    assert np.isfinite(batched).all() and ((batched >= 0) & (batched <= 1)).all()
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)
    np.testing.assert_allclose(det.score(texts[::-1], batch_size=64)[::-1], batched, atol=1e-6)
    np.testing.assert_array_equal(det.score(texts, batch_size=5), batched)  # deterministic
    # Texts under 2 tokens have no next-token statistics: neutral 0.5, never NaN.
    assert batched[len(SENTENCES)] == 0.5 and batched[len(SENTENCES) + 1] == 0.5
    assert np.isnan(det.scorer.raw_scores(["", "a"])).all()
    assert det.score([]).shape == (0,)
    np.testing.assert_allclose(det.score(texts, batch_size=0), batched, atol=1e-6)  # batch size 0 means 1


def test_long_texts_are_truncated_to_max_tokens(lms):
    det = load_detector(str(lms["fast"]))
    long_text = " ".join(SENTENCES * 5)
    ids = det.scorer.token_ids([long_text])[0]
    assert len(ids) == det.scorer.max_tokens == 40
    prefix = lms["tok"].decode(ids)
    assert det.scorer.token_ids([prefix])[0] == ids
    assert det.scorer.raw_scores([long_text])[0] == pytest.approx(det.scorer.raw_scores([prefix])[0], abs=1e-6)


def test_fit_logistic_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 20000)
    y = (rng.random(x.size) < 1 / (1 + np.exp(-(1.5 * x - 4.0)))).astype(float)
    slope, intercept = fit_logistic(x, y)
    assert slope == pytest.approx(1.5, rel=0.08) and intercept == pytest.approx(-4.0, rel=0.08)


def _greedy(checkpoint, tok, prompt: str, n: int = 25) -> str:
    """Greedy continuation from the (numpy reference) LM: text the model itself finds likely."""
    config, weights = read_config(checkpoint), read_weights(checkpoint)
    ids = tok.encode(prompt).ids
    for _ in range(n):
        ids.append(int(numpy_gpt2_logits(config, weights, np.array(ids))[-1].argmax()))
    return tok.decode(ids)


def test_calibrate_fits_logistic_and_writes_shipped_format(lms, tmp_path):
    det_dir = export_checkpoint(lms["observer"], tmp_path / "det", max_tokens=40)
    machine = [_greedy(lms["observer"], lms["tok"], " ".join(s.split()[:3])) for s in SENTENCES]
    lines = [{"text": t, "label": "human"} for t in SENTENCES] + [{"text": t, "label": "machine"} for t in machine]
    lines.append({"text": "a", "label": "human"})  # unscorable: counted, not fit
    data = tmp_path / "calib.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    uncalibrated = load_detector(str(det_dir))
    before = uncalibrated.score(machine)
    with pytest.raises(DetectorError, match="not calibrated, so no share can be estimated; run `synthweb detectors"):
        uncalibrated.require_calibration()

    cal = calibrate_detector(det_dir, data)

    shipped = json.loads((SHIPPED / "lexical" / "calibration.json").read_text())
    # These need article groups / a mixture bench.
    optional = {"effective_human", "effective_machine", "method", "control_method"}
    assert set(shipped) - optional <= set(cal) and not optional & set(cal) and cal["bins"] == 50
    assert sum(cal["hist_human"]) == cal["n_human"] == 6 and sum(cal["hist_machine"]) == cal["n_machine"] == 6
    assert cal["n_unscorable"] == 1 and 0 <= cal["threshold"] <= 1
    # The model's own greedy text is far more likely under it than human text: Fast-DetectGPT separates them.
    assert cal["auroc"] == 1.0 and cal["logistic"]["slope"] > 0
    assert json.loads((det_dir / "calibration.json").read_text()) == cal
    after = load_detector(str(det_dir))  # the process cache was cleared: the new map is used
    assert after.manifest["calibration"] == "calibration.json" and after.calibration == cal
    assert after.scorer.score_map["slope"] == pytest.approx(cal["logistic"]["slope"], rel=1e-5)
    assert not np.allclose(after.score(machine), before)
    assert after.score(machine).mean() > after.score(SENTENCES).mean()
    # A new score map changes what the store keeps, so the version moves on; the same map again does not.
    assert (uncalibrated.version, after.version) == ("1", "2")
    calibrate_detector(det_dir, data)
    assert load_detector(str(det_dir)).version == "2"


def test_calibrate_rejects_bad_labels(lms, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"text": "hello there", "label": "robot"}) + "\n")
    with pytest.raises(DetectorError, match=r"bad.jsonl:1"):
        calibrate_detector(lms["fast"], data)
    data.write_text(json.dumps({"text": "hello there", "label": "human"}) + "\n")
    with pytest.raises(DetectorError, match="both human and machine"):
        calibrate_detector(lms["fast"], data)


def test_score_stage_runs_a_likelihood_detector(lms):
    det = load_detector(str(lms["fast"]))
    pages = [Page(url=f"http://x.test/{len(t)}", text=t, lang="en", word_count=len(t.split())) for t in SENTENCES]
    out = list(ScoreStage(det, batch_size=4).run(pages))
    assert [p.p_synthetic for p in out] == pytest.approx(det.score(SENTENCES).tolist(), abs=1e-9)
    assert all(p.detector == "fast" and p.excluded == "short" for p in out)  # min_words 50 by default


def test_unknown_kind_and_broken_likelihood_manifest_are_clear_errors(lms, tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "x", "version": "1", "kind": "nope"}))
    with pytest.raises(DetectorError, match=r"unsupported detector kind 'nope'"):
        Detector(tmp_path)
    manifest = json.loads((lms["fast"] / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest | {"observer": "missing.onnx"}))
    (tmp_path / "tokenizer.json").write_bytes((lms["fast"] / "tokenizer.json").read_bytes())
    with pytest.raises(DetectorError, match="missing.onnx"):
        Detector(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest | {"method": "vibes"}))
    with pytest.raises(DetectorError, match="unknown likelihood method 'vibes'"):
        Detector(tmp_path)
