"""Detectors: metrics, the shipped lexical detector, the score stage, the ONNX export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.metrics import auroc, tpr_at_fpr
from detectors.runtime import SHIPPED, DetectorError, describe_detector, load_detector
from synthweb.pipeline import NotConfigured, Page
from synthweb.score import ScoreStage

HUMAN = (
    "I remember the summer my grandfather sold the farm. He never said much about it, but he "
    "walked the fence line every evening for a month, touching the posts like he was counting them. "
    "My mother said he was saying goodbye. I thought he was checking for loose wire, which, knowing "
    "him, was probably also true. The buyer was a developer from the city who wore loafers to the "
    "closing and got them ruined in the mud, and Grandpa laughed about that until Christmas."
)
MACHINE = (
    "In today's fast-paced world, it is important to understand the many benefits of sustainable "
    "agriculture. Sustainable agriculture not only helps protect the environment, but it also "
    "provides numerous economic and social benefits for communities around the world. By adopting "
    "sustainable practices, farmers can improve soil health, conserve water, and reduce their "
    "reliance on harmful chemicals. Overall, sustainable agriculture is an essential part of "
    "building a better future for everyone."
)


# --- metrics -----------------------------------------------------------------


def test_auroc_hand_examples():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5  # ties count half
    # 3 of 4 (pos, neg) pairs ordered correctly
    assert auroc([0, 0, 1, 1], [0.1, 0.6, 0.5, 0.9]) == 0.75
    with pytest.raises(ValueError):
        auroc([1, 1], [0.1, 0.2])


def test_tpr_at_fpr_hand_examples():
    labels = [0] * 10 + [1] * 4
    scores = [i / 10 for i in range(10)] + [0.95, 0.85, 0.5, 0.05]
    # No false positive allowed: threshold above 0.9 catches only 0.95.
    assert tpr_at_fpr(labels, scores, 0.0) == 0.25
    # One FP in ten allowed: threshold 0.85 flags negative 0.9 and positives 0.95, 0.85.
    assert tpr_at_fpr(labels, scores, 0.1) == 0.5
    # Two allowed: 0.8 flags no more positives; 0.5 would cost five FPs.
    assert tpr_at_fpr(labels, scores, 0.2) == 0.5
    assert tpr_at_fpr(labels, scores, 1.0) == 1.0
    # Tied scores across classes cannot be split.
    assert tpr_at_fpr([0, 1], [0.5, 0.5], 0.0) == 0.0


# --- shipped detector ----------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    return load_detector("lexical")


def test_shipped_detector_loads(detector):
    assert detector.name == "lexical"
    assert detector.version == "1"
    assert detector.languages == ["en"]
    assert detector.min_words == 50
    assert "CPUExecutionProvider" in detector.providers or detector.providers
    cal = detector.calibration
    assert cal["bins"] == 50 and len(cal["hist_human"]) == 50 and len(cal["hist_machine"]) == 50
    assert 0 < cal["threshold"] < 1
    assert (SHIPPED / "lexical" / "model.onnx").stat().st_size < 10 * 1024 * 1024
    # Cached: one load per process.
    assert load_detector("lexical") is detector
    assert load_detector(str(SHIPPED / "lexical")) is detector


def test_scores_in_range_deterministic_and_batch_invariant(detector):
    texts = [HUMAN, MACHINE, "", "!!!", "short text", HUMAN.upper(), MACHINE + " " + HUMAN] * 3
    a = detector.score(texts)
    assert a.shape == (len(texts),) and a.dtype == np.float64
    assert np.all((a >= 0) & (a <= 1))
    np.testing.assert_array_equal(a, detector.score(texts))
    one_by_one = np.array([detector.score([t])[0] for t in texts])
    np.testing.assert_allclose(detector.score(texts, batch_size=4), one_by_one, atol=1e-6)
    np.testing.assert_allclose(a, one_by_one, atol=1e-6)
    assert detector.score([]).shape == (0,)


def test_machine_scores_higher_on_calibration_split(detector):
    data = pytest.importorskip("detectors.data")
    try:
        records = data.load_records()
    except FileNotFoundError:
        pytest.skip("shared detector corpus not available")
    _, calib_groups = data.split_groups(records, holdout=0.2, salt="calib")
    calib = [r for r in records if r.group in calib_groups]
    human = [r.text for r in calib if r.label == 0][:40]
    machine = [r.text for r in calib if r.label == 1][:40]
    assert detector.score(machine).mean() > detector.score(human).mean() + 0.1


def test_unknown_detector_name():
    with pytest.raises(DetectorError, match="unknown detector"):
        load_detector("no-such-detector")
    with pytest.raises(ValueError):  # DetectorError is a ValueError
        load_detector("/nonexistent/dir")


def test_broken_manifest(tmp_path, monkeypatch):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(DetectorError, match="broken"):
        load_detector(str(bad))
    (bad / "manifest.json").write_text(json.dumps({"name": "broken", "version": "1", "model": "m.onnx"}))
    monkeypatch.setenv("SYNTHWEB_DETECTORS_PATH", str(tmp_path))
    with pytest.raises(DetectorError, match="missing"):
        load_detector("broken")  # found by name on the search path, then fails cleanly


def test_provider_override(monkeypatch):
    from detectors.runtime import choose_providers

    assert choose_providers()[-1] == "CPUExecutionProvider"
    monkeypatch.setenv("SYNTHWEB_ORT_PROVIDERS", "CPUExecutionProvider")
    assert choose_providers() == ["CPUExecutionProvider"]
    monkeypatch.setenv("SYNTHWEB_ORT_PROVIDERS", "NoSuchExecutionProvider")
    with pytest.raises(DetectorError):
        choose_providers()


# --- score stage -----------------------------------------------------------------


def _page(url: str, text: str, lang: str = "en", **kw) -> Page:
    return Page(url=url, text=text, lang=lang, word_count=len(text.split()), **kw)


def test_score_stage(detector):
    from scrapy.settings import Settings

    stage = ScoreStage.from_settings(Settings({"SYNTHWEB_DETECTOR": "lexical", "SYNTHWEB_BATCH_SIZE": "2"}))
    assert stage.name == "score" and stage.batch_size == 2
    pages = [
        _page("http://a/1", HUMAN),
        _page("http://a/2", "", lang=""),
        _page("http://a/3", "Too short to judge."),
        _page("http://a/4", MACHINE, lang="de"),
        _page("http://a/5", MACHINE, skip="too_large"),
        _page("http://a/6", MACHINE, lang=""),
    ]
    out = list(stage.run(iter(pages)))
    assert [p.url for p in out] == [p.url for p in pages]
    full, empty, short, german, skipped, nolang = out
    assert full.excluded == "" and full.detector == "lexical" and full.detector_version == "1"
    assert isinstance(full.p_synthetic, float) and 0 <= full.p_synthetic <= 1
    assert full.p_synthetic == pytest.approx(float(detector.score([HUMAN])[0]))
    assert empty.p_synthetic is None and empty.excluded == "empty"
    assert short.excluded == "short" and short.p_synthetic is not None
    assert german.excluded == "unsupported_lang" and german.p_synthetic is not None
    assert skipped.p_synthetic is None and skipped.detector == "" and skipped.excluded == ""
    assert nolang.excluded == "" and nolang.p_synthetic == pytest.approx(german.p_synthetic)


def test_score_stage_not_configured():
    from scrapy.settings import Settings

    with pytest.raises(NotConfigured):
        ScoreStage.from_settings(Settings({"SYNTHWEB_DETECTOR": ""}))


# --- ONNX export matches scikit-learn -----------------------------------------------


def test_onnx_export_matches_sklearn():
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    import onnxruntime as ort

    from detectors.runtime import preprocess
    from detectors.train import build_pipeline, export_onnx

    rng = np.random.default_rng(0)
    words = (HUMAN + " " + MACHINE).split()
    texts = [" ".join(rng.choice(words, size=60)) for _ in range(80)]
    texts = [preprocess(t) for t in texts + [HUMAN, MACHINE, "", "!!!"]]
    labels = [i % 2 for i in range(len(texts))]
    pipe = build_pipeline("word12+char14").set_params(features__word__min_df=1, features__char__min_df=1)
    pipe.fit(texts, labels)
    sess = ort.InferenceSession(export_onnx(pipe), providers=["CPUExecutionProvider"])
    onnx_scores = sess.run(["p_synthetic"], {"text": np.array(texts, dtype=object).reshape(-1, 1)})[0]
    np.testing.assert_allclose(onnx_scores, pipe.predict_proba(texts)[:, 1], atol=1e-5)


def test_design_effect_counts_clustered_texts_once():
    from detectors.train import calibrate, design_effect

    rng = np.random.default_rng(3)
    independent = rng.normal(size=400)
    assert design_effect(independent, np.arange(400)) == pytest.approx(1.0)
    # 100 articles, each copied four times: the mean is worth 100 texts, not 400
    copies = np.repeat(rng.normal(size=100), 4)
    assert design_effect(copies, np.repeat(np.arange(100), 4)) == pytest.approx(4.0, rel=0.05)
    scores = np.clip(np.concatenate([np.repeat(rng.beta(2, 5, 100), 4), rng.beta(5, 2, 400)]), 0, 1)
    labels = np.repeat([0, 1], 400)
    groups = np.concatenate([np.repeat(np.arange(100), 4), 1000 + np.arange(400)])
    cal = calibrate(scores, labels, groups=groups)
    assert cal["n_human"] == 400 and cal["effective_human"] == pytest.approx(100, rel=0.1)
    assert cal["effective_machine"] == pytest.approx(400, rel=0.15)
    assert "effective_human" not in calibrate(scores, labels)


def test_retraining_keeps_the_measured_estimation_methods(tmp_path, capsys):
    from detectors.train import write_calibration

    path = tmp_path / "calibration.json"
    write_calibration(path, {"bins": 2, "threshold": 0.5})
    assert json.loads(path.read_text()) == {"bins": 2, "threshold": 0.5}
    path.write_text(json.dumps({"bins": 2, "threshold": 0.5, "method": "em", "control_method": "pacc"}))
    write_calibration(path, {"bins": 2, "threshold": 0.6})
    assert json.loads(path.read_text()) == {"bins": 2, "threshold": 0.6, "method": "em", "control_method": "pacc"}
    assert "measure again" in capsys.readouterr().out


def test_an_ensemble_calibration_checks_its_members_variants(detector_copy, monkeypatch, tmp_path):
    shipped = json.loads((SHIPPED / "lexical" / "calibration.json").read_text())
    member = detector_copy("member", None, variant="int8")
    monkeypatch.setenv("SYNTHWEB_DETECTORS_PATH", str(tmp_path / "detectors"))
    ens = tmp_path / "detectors" / "stack"
    ens.mkdir()
    (ens / "combiner.json").write_text(json.dumps({"members": ["member"], "coef": [1.0], "intercept": 0.0}))
    (ens / "calibration.json").write_text(json.dumps(shipped | {"variants": {"member": ["fp32", "fp16"]}}))
    manifest = {"name": "stack", "version": "1", "kind": "ensemble", "members": ["member"]}
    (ens / "manifest.json").write_text(
        json.dumps(manifest | {"combiner": "combiner.json", "calibration": "calibration.json"})
    )
    detector = load_detector(str(ens))
    assert detector.variants == {"member": "int8"}
    with pytest.raises(DetectorError, match="holds for member fp32 or fp16, but member's model is int8"):
        detector.require_calibration()
    assert load_detector(member).variants == {"member": "int8"}
    described = describe_detector(str(ens))  # from the manifests alone, members' included
    assert described.variants == {"member": "int8"}
    with pytest.raises(DetectorError, match="holds for member fp32 or fp16, but member's model is int8"):
        described.require_calibration()


def test_a_description_needs_no_model_and_scores_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHWEB_MODELS", str(tmp_path / "no-models"))  # neither language model is built here
    detector = describe_detector("zeroshot")
    assert (detector.name, detector.version) == ("zeroshot", json.loads((SHIPPED / "zeroshot" / "manifest.json")
                                                                        .read_text())["version"])  # fmt: skip
    assert detector.variants == {"zeroshot": "fp32", "minilm": "fp32"}
    assert detector.require_calibration()["bins"] > 0
    with pytest.raises(DetectorError, match="described, not loaded"):
        detector.score(["some text"])


def test_shipped_calibrations_hold_for_the_shipped_variants():
    for name in ("minilm", "ensemble"):
        if not (SHIPPED / "minilm" / "model.onnx").is_file():
            pytest.skip("minilm's model.onnx is not built (scripts/setup.sh builds it)")
        detector = load_detector(name)
        assert detector.variants == {"minilm": "fp32"}
        assert detector.require_calibration()["variants"] == {"minilm": ["fp32", "fp16"]}
