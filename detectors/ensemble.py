"""The ensemble detector (manifest kind "ensemble"): a stacking combiner over member detectors.

The manifest lists member detector names and a combiner file: logistic regression over the
members' scores on the logit scale. The combiner is fit on article groups that none of the
members was trained on (see detectors.encoder_train), so it learns how far to trust each.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def combine(combiner: dict, member_scores: np.ndarray) -> np.ndarray:
    """P(machine) from member scores [N, members] with the committed combiner weights."""
    z = logit(member_scores) @ np.asarray(combiner["coef"], dtype=np.float64) + float(combiner["intercept"])
    return 1.0 / (1.0 + np.exp(-z))


def fit_combiner(member_scores: np.ndarray, labels: np.ndarray, members: list[str], c: float = 1.0) -> dict:
    """Logistic regression on the members' logits (needs scikit-learn, training only)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=1000).fit(logit(member_scores), labels)
    return {"members": members, "coef": [round(float(w), 6) for w in lr.coef_[0]],
            "intercept": round(float(lr.intercept_[0]), 6), "input": "logit(member P(machine))"}  # fmt: skip


class EnsembleScorer:
    """Scorer for kind "ensemble": loads the member detectors by name and combines their scores."""

    def __init__(self, path: Path, manifest: dict, make_session=None):
        from detectors.runtime import DetectorError, load_detector

        self.combiner = json.loads((path / manifest["combiner"]).read_text(encoding="utf-8"))
        self.member_names = list(manifest["members"])
        if self.combiner.get("members") != self.member_names:
            raise DetectorError(f"{path}: combiner members {self.combiner.get('members')} != {self.member_names}")
        if len(self.combiner["coef"]) != len(self.member_names):
            raise DetectorError(f"{path}: combiner has {len(self.combiner['coef'])} weights for {self.member_names}")
        self.members = [load_detector(name) for name in self.member_names]
        self.providers = sorted({p for m in self.members for p in m.providers})

    def member_scores(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """[N, members] scores, one column per member (for reports of where detectors disagree)."""
        return np.stack([m.score(texts, batch_size) for m in self.members], axis=1)

    def score(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.empty(0)
        return combine(self.combiner, self.member_scores(texts, batch_size))
