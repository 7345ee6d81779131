"""Calibrate a detector directory on labelled texts: `synthweb detectors calibrate DIR FILE.jsonl`.

Each line of FILE.jsonl has `text` and `label` (human|machine, or 0|1). Writes DIR/calibration.json
in the shipped format (50-bin histograms of P(synthetic) for human and machine texts, the threshold
maximising TPR - FPR, its TPR and FPR) and points the manifest at it. For likelihood detectors it
first fits the logistic map from the raw zero-shot score to P(synthetic) (stored as "logistic").
The histograms are computed on the same texts the two logistic parameters are fit on: a monotone
map, so the ranking (AUROC) is unaffected, but calibrate on texts the detector will not be judged on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detectors import evaluation
from detectors.metrics import auroc
from detectors.runtime import Detector, DetectorError, _load, resolve
from detectors.train import calibrate


def read_labelled(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts and 0/1 labels of a labelled JSON-lines file (detectors.evaluation.read_labelled)."""
    records = evaluation.read_labelled(path)
    return [r["text"] for r in records], np.array([r["label"] for r in records], dtype=int)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-4, iters: int = 100) -> tuple[float, float]:
    """(slope, intercept) of P(y=1) = sigmoid(slope * x + intercept), by Newton steps on a standardised x."""
    mu, sd = float(x.mean()), float(x.std()) or 1.0
    z = np.stack([(x - mu) / sd, np.ones_like(x)], axis=1)
    w = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) + l2 * np.r_[w[0], 0.0]
        hess = (z * (p * (1 - p))[:, None]).T @ z + l2 * np.diag([1.0, 0.0]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0] / sd), float(w[1] - w[0] * mu / sd)


def next_version(version: str) -> str:
    """The version after `version`: "1" -> "2", "1.4" -> "1.5", "beta" -> "beta.1"."""
    head, _, last = version.rpartition(".")
    if last.isdigit():
        return f"{head}.{int(last) + 1}" if head else str(int(last) + 1)
    return f"{version}.1"


def _rounded(score_map: dict) -> tuple[float, float]:
    return round(float(score_map["slope"]), 6), round(float(score_map["intercept"]), 6)


def calibrate_detector(directory: str | Path, jsonl: str | Path) -> dict:
    """Calibrate the detector in `directory` on the labelled texts of `jsonl`; returns calibration.json's content."""
    path = resolve(str(directory))
    texts, labels = read_labelled(Path(jsonl))
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    detector = Detector(path)
    extra: dict = {}
    if detector.kind == "likelihood":
        raw = detector.scorer.raw_scores(texts)  # raw scores do not depend on a previous calibration
        ok = np.isfinite(raw)
        if len(set(labels[ok].tolist())) < 2:
            raise DetectorError(f"{jsonl}: too few scorable texts of each label (need 2 tokens or more)")
        slope, intercept = fit_logistic(raw[ok], labels[ok].astype(float))
        texts_ok, labels = [t for t, k in zip(texts, ok, strict=True) if k], labels[ok]
        if _rounded(detector.scorer.score_map) != _rounded({"slope": slope, "intercept": intercept}):
            # The map turns raw scores into the P(synthetic) the store keeps: pages scored under the
            # old map must not share a version (and so histograms) with pages scored under the new.
            manifest["version"] = next_version(str(manifest["version"]))
        detector.scorer.score_map = {"slope": slope, "intercept": intercept}
        probs = detector.scorer.probability(raw[ok])
        extra = {
            "logistic": {"slope": round(slope, 6), "intercept": round(intercept, 6)},
            "raw_score": detector.scorer.method,
            "n_unscorable": int((~ok).sum()),
        }
        texts = texts_ok
    else:
        probs = detector.score(texts)
    calibration = calibrate(np.asarray(probs, dtype=float), labels) | extra
    calibration["auroc"] = round(auroc(labels, probs), 4)
    if detector.variants:  # measured on these model variants only
        calibration["variants"] = {name: [variant] for name, variant in detector.variants.items()}
    (path / "calibration.json").write_text(json.dumps(calibration, indent=1) + "\n", encoding="utf-8")
    manifest["calibration"] = "calibration.json"
    manifest["calibrated_on"] = {"file": Path(jsonl).name, "n_texts": len(texts)}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    _load.cache_clear()  # a detector loaded earlier in this process must see the new calibration
    return calibration
