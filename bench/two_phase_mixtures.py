"""Two-phase scoring on mixtures of known share: error and interval coverage per strong rate.

    python bench/two_phase_mixtures.py [--reps 12] [--out bench/two_phase_mixtures.json]
        [--scores-file detectors/.cache/lm/zeroshot-calibration-scores.npz] [--strong zeroshot] [--fast hashed]

The texts are the strong detector's scored subset of the calibration split of
../shared/data/detect/fast-detect-gpt (article groups never trained on; `detectors.lm_train stats`
writes the scores file); the fast detector scores the same texts here. As in
bench/estimation_mixtures.py the split is halved by article group: one half rebuilds both detectors'
calibrations, the other is the pool mixtures are drawn from; then the halves swap (2 folds).

Every mixture is scored in full by the fast detector; at each rate (1, 0.2, 0.05) each of its documents
is picked for the strong detector with that probability (a Poisson sample, as the score stage does), and
three estimates are compared:
- two-phase: `synthweb.twophase.estimate_cells` (post-stratified on the fast score), what `report` gives;
- strong sample only: the strong detector's estimate from the picked documents alone (no fast scores);
- fast only: the fast detector's own estimate from every document (no sample).
Same distribution: n = 500 documents of all three domains. Domain held out: n = 200 from ONE domain of
the pool while the calibrations mix all three.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SYNTHWEB_ORT_PROVIDERS", "CPUExecutionProvider")

from bench.estimation_mixtures import SHARES, calibration_from, half  # noqa: E402
from detectors.calibration import bin_index  # noqa: E402
from detectors.data import load_records, split_groups  # noqa: E402
from detectors.lm_heads import record_key  # noqa: E402
from detectors.runtime import load_detector  # noqa: E402
from synthweb.estimate import estimate_histogram, histogram  # noqa: E402
from synthweb.twophase import Cells, estimate_cells  # noqa: E402

RATES = (1.0, 0.2, 0.05)
SAME_N, DOMAIN_N = 500, 200
BINS = 50


def mixture(rng, pool: np.ndarray, labels: np.ndarray, share: float, n: int) -> np.ndarray:
    """Indices of n pool documents, round(share * n) machine-written (with replacement where the pool is short)."""
    machine, human = pool[labels[pool] == 1], pool[labels[pool] == 0]
    k = int(round(share * n))
    replace = k > len(machine) or n - k > len(human)
    return np.concatenate([rng.choice(machine, k, replace=replace), rng.choice(human, n - k, replace=replace)])


def estimates(rng, idx, fast, strong, cal_fast, cal_strong) -> dict[str, object]:
    """Estimate objects per (estimator, rate) for one mixture (`fast`, `strong`: scores of every text)."""
    fast_bins, strong_bins = bin_index(fast, BINS), bin_index(strong, BINS)
    out = {"fast only": estimate_histogram(histogram(fast[idx], BINS), cal_fast, fit=False)}
    for rate in RATES:
        picked = rng.random(len(idx)) < rate
        rows = np.stack([fast_bins[idx], np.where(picked, strong_bins[idx], -1), np.full(len(idx), rate),
                         np.ones(len(idx))], axis=1)  # fmt: skip
        out[f"two-phase @{rate:g}"] = estimate_cells(Cells.from_rows(rows), cal_strong)
        if picked.any():
            out[f"strong sample only @{rate:g}"] = estimate_histogram(
                histogram(strong[idx][picked], BINS), cal_strong, fit=False
            )
    return out


def summarise(rows: list[tuple[float, bool, float]]) -> dict:
    err = np.array([r[0] for r in rows])
    covered = float(np.mean([r[1] for r in rows]))
    return {
        "max_abs_error": round(float(np.abs(err).max()), 3),
        "mean_abs_error": round(float(np.abs(err).mean()), 3),
        "bias": round(float(err.mean()), 3),
        "coverage": round(covered, 3),
        # binomial standard error: at 192 mixtures a true 0.95 reads anywhere from ~0.92 to ~0.98
        "coverage_se": round(float(np.sqrt(covered * (1 - covered) / len(rows))), 3),
        "mean_width": round(float(np.mean([r[2] for r in rows])), 3),
        "mixtures": len(rows),
    }


def run(fast, strong, labels, groups, domains, reps: int, methods: tuple, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    halves = np.array([half(g) for g in groups])
    same: dict[str, list] = {}
    shifted: dict[str, dict[str, list]] = {}
    for fold in (0, 1):
        cal, pool = np.flatnonzero(halves != fold), np.flatnonzero(halves == fold)
        cal_strong = calibration_from(strong[cal], labels[cal], groups[cal])
        cal_fast = calibration_from(fast[cal], labels[cal], groups[cal])
        cal_fast, cal_strong = replace(cal_fast, method=methods[0]), replace(cal_strong, method=methods[1])
        for share in SHARES:
            for _ in range(reps):
                idx = mixture(rng, pool, labels, share, SAME_N)
                for name, e in estimates(rng, idx, fast, strong, cal_fast, cal_strong).items():
                    if e.share is not None:
                        same.setdefault(name, []).append((e.share - share, e.ci_low <= share <= e.ci_high,
                                                          e.ci_high - e.ci_low))  # fmt: skip
                for domain in sorted(set(domains)):
                    sub = pool[domains[pool] == domain]
                    idx = mixture(rng, sub, labels, share, DOMAIN_N)
                    found = estimates(rng, idx, fast, strong, cal_fast, cal_strong)
                    for name, e in found.items():
                        if e.share is not None:
                            shifted.setdefault(domain, {}).setdefault(name, []).append(
                                (e.share - share, e.ci_low <= share <= e.ci_high, e.ci_high - e.ci_low)
                            )
        print(f"fold {fold} done", file=sys.stderr)
    result = {"same_distribution": {k: summarise(v) for k, v in sorted(same.items())}}
    result["domain_held_out"] = {
        d: {k: summarise(v) for k, v in sorted(rows.items())} for d, rows in sorted(shifted.items())
    }
    pooled: dict[str, list] = {}
    for rows in shifted.values():
        for k, v in rows.items():
            pooled.setdefault(k, []).extend(v)
    result["domain_held_out_all"] = {k: summarise(v) for k, v in sorted(pooled.items())}
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strong", default="zeroshot")
    ap.add_argument("--fast", default="hashed")
    ap.add_argument("--reps", type=int, default=12, help="mixtures per (fold, share)")
    ap.add_argument("--scores-file", type=Path, default=Path("detectors/.cache/lm/zeroshot-calibration-scores.npz"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "two_phase_mixtures.json")
    args = ap.parse_args()
    t0 = time.time()
    strong_det, fast_det = load_detector(args.strong), load_detector(args.fast)
    methods = (fast_det.calibration.get("method"), strong_det.calibration.get("method"))
    data = np.load(args.scores_file)
    if str(data["detector"]) != f"{strong_det.name} v{strong_det.version}":
        raise SystemExit(f"{args.scores_file} holds {data['detector']}, not {strong_det.name} v{strong_det.version}")
    given = dict(zip(data["keys"].tolist(), data["scores"].tolist(), strict=True))
    records = load_records()
    _, calib_groups = split_groups(records, holdout=0.2, salt="calib")
    calib = [r for r in records if r.group in calib_groups and record_key(r) in given]
    strong = np.array([given[record_key(r)] for r in calib])
    fast = fast_det.score([r.text for r in calib])
    labels = np.array([r.label for r in calib])
    groups = np.array([r.group for r in calib])
    domains = np.array([r.domain for r in calib])
    print(f"{len(calib)} texts; fast {fast_det.name} scored them in {time.time() - t0:.0f} s", file=sys.stderr)
    result = run(fast, strong, labels, groups, domains, args.reps, methods)
    result["setup"] = {
        "strong": f"{strong_det.name} v{strong_det.version} ({methods[1]})",
        "fast": f"{fast_det.name} v{fast_det.version} ({methods[0] or 'pacc'})",
        "texts": len(calib),
        "rates": RATES,
        "shares": SHARES,
        "reps_per_fold_and_share": args.reps,
        "same_distribution_n": SAME_N,
        "domain_n": DOMAIN_N,
        "seconds": round(time.time() - t0),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for section in ("same_distribution", "domain_held_out_all"):
        print(f"\n{section}")
        for name, row in result[section].items():
            print(f"  {name:26s} {row}")


if __name__ == "__main__":
    main()
