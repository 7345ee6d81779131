"""The calibration format of a detector and its binning rule, shared by training, the runtime and the estimator.

calibration.json holds the detector's validation histograms of P(synthetic) for human and machine
texts (`bins` equal bins over [0, 1]), its decision threshold, and optionally the effective sizes of
clustered validation sets and the share estimators measured best for it. `bin_index` is the one
binning rule: detectors/train.py, `synthweb estimate` and the store's `page_stats` view agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

BINS = 50  # histogram bins of every calibration, and of the store's page_stats (schemas/clickhouse/003_page_stats.sql)
# Estimation methods measured for a detector and named in its calibration.json (bench/estimation_mixtures.py).
MEASURED_METHOD_KEYS = ("method", "control_method")


@dataclass(frozen=True)
class Calibration:
    """A detector's validation histograms and its decision threshold (a bin edge).

    `effective_human` / `effective_machine` are the histograms' worth in independent texts where the
    validation texts come in clusters (detectors.train.calibrate); None means every text counts.
    """

    bins: int
    hist_human: np.ndarray
    hist_machine: np.ndarray
    threshold: float
    effective_human: float | None = None
    effective_machine: float | None = None
    method: str | None = None  # the estimator measured best for this detector (bench/estimation_mixtures.py)
    control_method: str | None = None  # the one measured best when a pre-LLM control is the human reference
    # the estimator's method names (synthweb.estimate.Calibration); None: any name is kept
    known_methods: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        optional = {k: float(data[k]) for k in ("effective_human", "effective_machine") if data.get(k)}
        for key in MEASURED_METHOD_KEYS:
            if data.get(key):
                if cls.known_methods is not None and data[key] not in cls.known_methods:
                    raise ValueError(f"calibration names unknown {key} {data[key]!r}")
                optional[key] = data[key]
        return cls(
            bins=int(data["bins"]),
            hist_human=np.asarray(data["hist_human"], dtype=float),
            hist_machine=np.asarray(data["hist_machine"], dtype=float),
            threshold=float(data["threshold"]),
            **optional,
        )

    @property
    def n_human(self) -> float:
        """Independent texts behind the human histogram (its sum unless clustered)."""
        return self.effective_human or float(self.hist_human.sum())

    @property
    def n_machine(self) -> float:
        return self.effective_machine or float(self.hist_machine.sum())

    @property
    def threshold_bin(self) -> int:
        return int(round(self.threshold * self.bins))

    def rates(self) -> tuple[int, int, int, int]:
        """(machine positives, machine total, human positives, human total) at the threshold."""
        k = self.threshold_bin
        return (
            int(self.hist_machine[k:].sum()),
            int(self.hist_machine.sum()),
            int(self.hist_human[k:].sum()),
            int(self.hist_human.sum()),
        )


def bin_index(scores, bins: int) -> np.ndarray:
    """The bin of each score: min(floor(p * bins), bins - 1).

    Scores are rounded to float32 first and an epsilon of 1e-4 absorbs float32 error, exactly as
    the `page_stats` view bins the Float32 scores it stores, so calibration, files and the store
    agree on scores that sit on an edge.
    """
    scores = np.asarray(scores, dtype=np.float32).astype(np.float64)
    return np.clip(np.floor(scores * bins + 1e-4).astype(int), 0, bins - 1)


def histogram(scores, bins: int) -> np.ndarray:
    """Counts of scores per bin (`bin_index`)."""
    return np.bincount(bin_index(scores, bins), minlength=bins)
