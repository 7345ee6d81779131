"""Detection metrics with numpy only (no scikit-learn at runtime)."""

from __future__ import annotations

import numpy as np


def auroc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both positive and negative examples")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=float)
    # Average ranks over runs of tied scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0  # 1-based average rank
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def tpr_at_fpr(labels, scores, fpr: float = 0.01) -> float:
    """Highest TPR with FPR <= `fpr`, flagging `score >= t` for some threshold t.

    Ties are handled honestly: a threshold flags every sample at or above it.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    neg, pos = np.sort(s[~y]), s[y]
    if len(neg) == 0 or len(pos) == 0:
        raise ValueError("TPR@FPR needs both positive and negative examples")
    thresholds = np.unique(s)  # ascending
    fp_rate = (len(neg) - np.searchsorted(neg, thresholds, side="left")) / len(neg)
    feasible = np.flatnonzero(fp_rate <= fpr)
    if len(feasible) == 0:
        return 0.0
    # The lowest feasible threshold flags the most positives.
    return float((pos >= thresholds[feasible[0]]).mean())


def score_metrics(labels, scores) -> dict:
    """AUROC and TPR at 1% / 5% FPR, rounded to 4 places (None without both classes): every table's columns."""
    y = np.asarray(labels)
    both = bool((y == 0).any() and (y == 1).any())
    metrics = {
        "auroc": auroc,
        "tpr@1%fpr": lambda a, b: tpr_at_fpr(a, b, 0.01),
        "tpr@5%fpr": lambda a, b: tpr_at_fpr(a, b, 0.05),
    }
    return {key: round(f(y, scores), 4) if both else None for key, f in metrics.items()}
