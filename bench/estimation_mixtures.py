"""Error of each estimation method on mixtures of known machine-written share.

    python bench/estimation_mixtures.py [--detector lexical] [--reps 25] [--out bench/estimation_mixtures.json]
                                        [--scores-cache /tmp/scores.npz] [--write-method]
                                        [--scores-file detectors/.cache/lm/NAME-calibration-scores.npz]

Texts come from the detector's calibration split of ../shared/data/detect/fast-detect-gpt (article
groups never used in training). That split is halved by group: one half rebuilds the calibration
(detectors.train.calibrate, with the texts' article groups as shipped calibrations have them; a second
pass without groups shows what counting near-duplicate texts as independent gave), the other half is the pool
the mixtures are drawn from; then the halves swap (2 folds). Mixtures have shares 0-60% and
n = 200 and 500 documents (drawn without replacement) and n = 1000 (with replacement: the pool
holds ~640 human texts). A second table draws each mixture from ONE domain of the pool while the
calibration mixes all three (n = 100): the domain shift every real slice of the web has. A third
table estimates such mixtures with a same-domain human control in place of the lab's human
histogram, as `report --fpr-from control` does with a stratum's pre-LLM pages. A fourth counts how
often the fit test (`fit_p` < 0.05) flags slices of each size, with and without domain shift.

`--scores-file` takes a detector's scores of a subset of the calibration split (the LM trainer writes one:
scoring all 2,616 texts with an LM costs an hour on two cores); draws that need more texts than such a
pool holds are made with replacement.

If QuaPy is importable (PYTHONPATH=/path/to/quapy), its PACC/EMQ/HDy on per-document scores are
scored too, as a cross-check of what a library on raw scores (which the store does not keep) gives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SYNTHWEB_ORT_PROVIDERS", "CPUExecutionProvider")

from detectors.data import load_records, split_groups  # noqa: E402
from detectors.runtime import load_detector  # noqa: E402
from detectors.train import calibrate, design_effect  # noqa: E402
from synthweb.estimate import METHODS, Calibration, estimate_histogram, histogram  # noqa: E402
from synthweb.report import MISFIT_P  # noqa: E402

SHARES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
SIZES = ((200, False), (500, False), (1000, True))  # (n, with replacement)
BINS = 50
DOMAIN_N = 100  # the smallest per-domain pool (squad, one half) holds ~140 human texts


def calibration_from(scores: np.ndarray, labels: np.ndarray, groups=None) -> Calibration:
    """The calibration a detector would ship from these texts (with their article groups: clustered)."""
    return Calibration.from_dict(calibrate(scores, labels, BINS, groups=groups))


def half(group: str) -> int:
    return int(hashlib.sha1(f"mixture:{group}".encode()).hexdigest()[:8], 16) % 2


def quapy_methods(cal_scores, cal_labels):
    """QuaPy PACC, EMQ and HDy fitted on per-document calibration scores, or {} without QuaPy."""
    try:
        import quapy as qp
        from quapy.method.aggregative import EMQ, PACC, HDy
    except ImportError:
        return {}

    from sklearn.base import BaseEstimator, ClassifierMixin

    class Fixed(ClassifierMixin, BaseEstimator):  # a "classifier" whose posteriors are the detector's scores
        def __init__(self):
            self.classes_ = np.array([0, 1])

        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            s = np.asarray(X, dtype=float).reshape(-1)
            return np.c_[1 - s, s]

    qp.environ["SAMPLE_SIZE"] = 100
    methods = {}
    for name, cls in (("quapy-pacc", PACC), ("quapy-emq", EMQ), ("quapy-hdy", HDy)):
        q = cls(Fixed(), fit_classifier=False, val_split=None) if cls is not EMQ else cls(Fixed(), fit_classifier=False)
        posteriors = Fixed().predict_proba(cal_scores)
        if cls is EMQ:
            q.train_prevalence = np.array([np.mean(cal_labels == 0), np.mean(cal_labels == 1)])
        q.aggregation_fit(posteriors, cal_labels)
        methods[name] = lambda s, q=q: float(q.aggregate(Fixed().predict_proba(s))[1])
    return methods


def draw(rng, pool_h, pool_m, share: float, n: int, replace: bool = True) -> np.ndarray:
    """Scores of a slice of n documents, round(share * n) of them machine-written."""
    k = int(round(share * n))
    replace = replace or k > len(pool_m) or n - k > len(pool_h)  # a subset's pools can be smaller than n
    return np.concatenate([rng.choice(pool_m, k, replace=replace), rng.choice(pool_h, n - k, replace=replace)])


def estimate_all(hist, cal, share: float, human=None) -> dict[str, tuple]:
    """(error, covered, width, misfit) per method; the fit test, the same for every method, runs once."""
    rows, flagged = {}, None
    for method in METHODS:
        e = estimate_histogram(hist, cal, method, human=human, fit=flagged is None)
        if flagged is None:
            flagged = e.fit_p is not None and e.fit_p < MISFIT_P  # the report's MISFIT
        rows[method] = (e.share - share, e.ci_low <= share <= e.ci_high, e.ci_high - e.ci_low, flagged)
    return rows


def run_cell(rng, pool_h, pool_m, share, n, replace, cal, extra, reps) -> dict[str, list]:
    out: dict[str, list] = {m: [] for m in (*METHODS, *extra)}
    for _ in range(reps):
        scores = draw(rng, pool_h, pool_m, share, n, replace)
        for method, row in estimate_all(histogram(scores, BINS), cal, share).items():
            out[method].append(row)
        for name, fn in extra.items():
            out[name].append((fn(scores) - share, None, None))
    return out


def summarise(errors: dict[str, list]) -> dict[str, dict]:
    table = {}
    for method, rows in errors.items():
        err = np.array([r[0] for r in rows])
        covered = [r[1] for r in rows if r[1] is not None]
        widths = [r[2] for r in rows if r[2] is not None]
        flagged = [r[3] for r in rows if len(r) > 3]
        table[method] = {
            "max_abs": round(float(np.abs(err).max()), 4),
            "mean_abs": round(float(np.abs(err).mean()), 4),
            "bias": round(float(err.mean()), 4),
            "coverage": round(float(np.mean(covered)), 3) if covered else None,
            "mean_width": round(float(np.mean(widths)), 4) if widths else None,
            "runs": len(rows),
        }
        if flagged:
            table[method]["misfit_flagged"] = round(float(np.mean(flagged)), 3)
    return table


def measure(scores, labels, groups, halves, domains, reps: int, clustered: bool, t0: float) -> dict:
    """Errors per cell, both folds pooled; `clustered` gives the calibration its article groups."""
    rng = np.random.default_rng(7)
    results: dict[str, dict] = {"by_size": {}, "by_domain": {}}
    pooled: dict[str, dict[str, list]] = {}
    for fold in (0, 1):
        fit, pool = halves == fold, halves != fold
        cal = calibration_from(scores[fit], labels[fit], groups[fit] if clustered else None)
        extra = quapy_methods(scores[fit], labels[fit])
        for n, replace in SIZES:
            key = f"n={n}" + (" (with replacement)" if replace else "")
            cell = pooled.setdefault(key, {})
            for share in SHARES:
                errs = run_cell(
                    rng, scores[pool & (labels == 0)], scores[pool & (labels == 1)], share, n, replace, cal, extra, reps
                )
                for m, rows in errs.items():
                    cell.setdefault(m, []).extend(rows)
        for domain in sorted(set(domains)):
            key = f"domain={domain}, n={DOMAIN_N}"
            cell = pooled.setdefault(key, {})
            sel = pool & (domains == domain)
            for share in SHARES:
                errs = run_cell(
                    rng, scores[sel & (labels == 0)], scores[sel & (labels == 1)], share, DOMAIN_N, False, cal, extra,
                    max(4, reps // 3),
                )  # fmt: skip
                for m, rows in errs.items():
                    cell.setdefault(m, []).extend(rows)
        mode = "clustered" if clustered else "iid"
        print(f"{mode} calibration, fold {fold} done ({time.time() - t0:.0f}s)", flush=True)
    for key, errors in pooled.items():
        results["by_domain" if key.startswith("domain=") else "by_size"][key] = summarise(errors)
    same = [m for k, m in pooled.items() if not k.startswith("domain=")]
    results["overall_same_distribution"] = summarise({m: sum((c[m] for c in same), []) for m in same[0]})
    shifted = [m for k, m in pooled.items() if k.startswith("domain=")]
    results["overall_domain_shift"] = summarise({m: sum((c[m] for c in shifted), []) for m in shifted[0]})
    return results


def control_half(group: str) -> bool:
    return int(hashlib.sha1(f"control:{group}".encode()).hexdigest()[:8], 16) % 2 == 0


def measure_control(scores, labels, groups, halves, domains, reps: int) -> dict:
    """Per-domain mixtures estimated with the lab's human histogram or a same-domain human control.

    Within each domain of the pool half, half the article groups give the control (their human texts,
    worth n / design effect independent ones, as `calibrate` counts them), the other half the mixtures
    (n = DOMAIN_N, with replacement: the smallest domain keeps ~70 human texts). The control goes in
    as its counts seen with that effective size; "scaled" resamples its proportions at the effective
    size instead (the scheme used before, kept to show why it was dropped).
    """
    rng = np.random.default_rng(11)
    pooled: dict[str, list] = {}
    control_groups = np.array([control_half(g) for g in groups])
    for fold in (0, 1):
        fit, pool = halves == fold, halves != fold
        cal = calibration_from(scores[fit], labels[fit], groups[fit])
        for domain in sorted(set(domains)):
            sel = pool & (domains == domain)
            in_control = control_groups & sel
            control = in_control & (labels == 0)
            counts = histogram(scores[control], BINS).astype(float)
            deff = max(1.0, design_effect(scores[control], groups[control]))
            effective = counts.sum() / deff
            references = {"lab": None, "control": (counts, effective), "scaled": (counts / deff, effective)}
            mix = sel & ~in_control
            pool_h, pool_m = scores[mix & (labels == 0)], scores[mix & (labels == 1)]
            for share in SHARES:
                for _ in range(reps):
                    hist = histogram(draw(rng, pool_h, pool_m, share, DOMAIN_N), BINS)
                    for ref, human in references.items():
                        for method, row in estimate_all(hist, cal, share, human).items():
                            pooled.setdefault(f"{method} ({ref})", []).append(row)
    return summarise(pooled)


def measure_fit(scores, labels, groups, halves, domains, reps: int) -> dict:
    """How often the fit test flags a slice, by slice size: mixtures of the pool's own distribution
    (should be rare) and of one domain against the pooled lab (the shift the test is for), with the
    em share's mean abs error beside it. Drawn with replacement, shares 0 / 0.2 / 0.4: large slices
    repeat a small pool's own quirks, so flag rates at n >= 500 are upper bounds, more so per domain."""
    rng = np.random.default_rng(13)
    pooled: dict[str, list] = {}
    for fold in (0, 1):
        fit, pool = halves == fold, halves != fold
        cal = calibration_from(scores[fit], labels[fit], groups[fit])
        for setting in ("all domains", *sorted(set(domains))):
            sel = pool if setting == "all domains" else pool & (domains == setting)
            pool_h, pool_m = scores[sel & (labels == 0)], scores[sel & (labels == 1)]
            for n in (100, 500, 2000):
                for share in (0.0, 0.2, 0.4):
                    for _ in range(reps):
                        e = estimate_histogram(histogram(draw(rng, pool_h, pool_m, share, n), BINS), cal, "em")
                        misfit = e.fit_p < MISFIT_P  # the report's MISFIT
                        pooled.setdefault(f"{setting}, n={n}", []).append((abs(e.share - share), misfit))
    return {
        key: {"flagged": round(float(np.mean([r[1] for r in rows])), 3),
              "em_mean_abs": round(float(np.mean([r[0] for r in rows])), 4), "runs": len(rows)}
        for key, rows in pooled.items()
    }  # fmt: skip


def best_method(table: dict[str, dict], min_coverage: float = 0.9) -> str | None:
    """The corrected method with the lowest max error (then mean) among those whose intervals cover."""
    covering = [m for m in METHODS if m != "cc" and (table[m]["coverage"] or 0) >= min_coverage]
    return min(covering, key=lambda m: (table[m]["max_abs"], table[m]["mean_abs"])) if covering else None


def cached_scores(detector, texts: list[str], cache: Path | None) -> np.ndarray:
    """The detector's scores of `texts`, from `cache` when it holds this detector version's."""
    key = f"{detector.name} v{detector.version} {len(texts)}"
    if cache and cache.exists():
        data = np.load(cache)
        if str(data["key"]) == key:
            return data["scores"]
    scores = detector.score(texts)
    if cache:
        np.savez(cache, key=key, scores=scores)
    return scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--detector", default="lexical")
    ap.add_argument("--reps", type=int, default=25, help="mixtures per (fold, share, size)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "estimation_mixtures.json")
    ap.add_argument(
        "--write-method",
        action="store_true",
        help="record the best methods (lab / control reference) in the detector's calibration.json",
    )
    ap.add_argument("--scores-cache", type=Path, help="npz file reused while detector name and version match")
    ap.add_argument("--scores-file", type=Path, help="npz of keys and scores for a subset of the calibration split")
    args = ap.parse_args()
    t0 = time.time()
    detector = load_detector(args.detector)
    records = load_records()
    _, calib_groups = split_groups(records, holdout=0.2, salt="calib")
    calib = [r for r in records if r.group in calib_groups]
    if args.scores_file:
        from detectors.lm_heads import record_key

        data = np.load(args.scores_file)
        if str(data["detector"]) != f"{detector.name} v{detector.version}":
            raise SystemExit(
                f"{args.scores_file} holds scores of {data['detector']}, not {detector.name} v{detector.version}"
            )
        given = dict(zip(data["keys"].tolist(), data["scores"].tolist(), strict=True))
        calib = [r for r in calib if record_key(r) in given]
        scores = np.array([given[record_key(r)] for r in calib])
        print(f"{len(calib)} calibration texts scored in {args.scores_file}")
    else:
        scores = cached_scores(detector, [r.text for r in calib], args.scores_cache)
    labels = np.array([r.label for r in calib])
    groups = np.array([r.group for r in calib])
    halves = np.array([half(g) for g in groups])
    domains = np.array([r.domain for r in calib])
    # Shipped calibrations know their texts' article groups; "iid" shows what ignoring them gave.
    results = measure(scores, labels, groups, halves, domains, args.reps, True, t0)
    iid = measure(scores, labels, groups, halves, domains, args.reps, False, t0)
    results["iid_calibration"] = {k: iid[k] for k in ("overall_same_distribution", "overall_domain_shift")}
    results["domain_shift_with_control"] = measure_control(scores, labels, groups, halves, domains, args.reps)
    results["fit_test"] = measure_fit(scores, labels, groups, halves, domains, max(4, args.reps // 2))
    results["setup"] = {
        "detector": f"{detector.name} v{detector.version}",
        "calibration_split_texts": len(calib),
        "shares": SHARES,
        "reps_per_cell": args.reps,
        "seconds": round(time.time() - t0),
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    best = best_method(results["overall_same_distribution"])
    with_control = results["domain_shift_with_control"]
    best_control = best_method({m: with_control[f"{m} (control)"] for m in METHODS})
    print(f"best method: {best}; with a control reference: {best_control}")
    if args.write_method:
        path = Path(detector.path) / "calibration.json"
        calibration = json.loads(path.read_text())
        # No method that covers, none named: the estimator falls back (and the bench says so above).
        for key, value in (("method", best), ("control_method", best_control)):
            if value:
                calibration[key] = value
            else:
                calibration.pop(key, None)
        path.write_text(json.dumps(calibration, indent=1) + "\n")
        print(f"wrote method {best!r}, control_method {best_control!r} to {path}")
    for name, section in (
        ("same distribution", results["overall_same_distribution"]),
        ("domain shift", results["overall_domain_shift"]),
        ("same distribution, iid calibration", iid["overall_same_distribution"]),
        ("domain shift, lab vs same-domain control reference", results["domain_shift_with_control"]),
        ("fit test: share of slices flagged as no mixture of the lab's classes", results["fit_test"]),
    ):
        print(f"\n{name}")
        for m, row in section.items():
            print(f"  {m:11s} {row}")


if __name__ == "__main__":
    main()
