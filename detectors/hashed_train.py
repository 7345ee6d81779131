"""Train, evaluate and export the fast hashed-n-gram detector (detectors.hashed).

    python -m detectors.hashed_train [--out detectors/shipped/hashed] [--bits 20] [--max-n 4] [--c 4]

Held-out AUROC (leave-one-domain-out, leave-one-generator-out) is measured first; the shipped
model is then fit on the same ~80% of article groups as the lexical detector and calibrated
on the other ~20%. Needs the `train` extra (scikit-learn).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from detectors.data import Record, load_records, split_groups
from detectors.hashed import linear_scores, ngram_ids, onnx_model
from detectors.metrics import auroc, tpr_at_fpr
from detectors.train import (
    SEED,
    calibrate,
    heldout_summary,
    markdown_table,
    metrics_row,
    split_indices,
    write_detector,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "shipped" / "hashed"


def features(texts: list[str], bits: int, max_n: int):
    """CSR [texts, 2**bits]: n-gram counts / sqrt(n-grams in the text), what the model is linear in."""
    import scipy.sparse as sp

    ids, doc_ids, counts = ngram_ids(texts, bits, max_n)
    X = sp.csr_matrix((np.ones(len(ids), np.float32), (doc_ids, ids)), shape=(len(texts), 1 << bits))
    X.sum_duplicates()
    return (sp.diags((1 / np.sqrt(np.maximum(counts, 1))).astype(np.float32)) @ X).tocsr()


def fit(X, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=3000, random_state=SEED).fit(X, y)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def _split_row(name: str, X, y: np.ndarray, train: np.ndarray, test: np.ndarray, c: float) -> dict:
    weights, bias = fit(X[train], y[train], c)
    return metrics_row(name, len(train), y[test], X[test] @ weights + bias)


def evaluate(records: list[Record], X, c: float, n_jobs: int = 2) -> dict:
    """Held-out rows and per-kind means, same splits and table as the lexical detector."""
    from joblib import Parallel, delayed

    y = np.array([r.label for r in records])
    jobs = split_indices(records)
    return heldout_summary(Parallel(n_jobs=n_jobs)(delayed(_split_row)(name, X, y, tr, te, c) for name, tr, te in jobs))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--bits", type=int, default=20, help="2**bits hash buckets (weights: 4 * 2**bits bytes)")
    ap.add_argument("--max-n", type=int, default=4, help="longest byte n-gram (1..4)")
    ap.add_argument("--c", type=float, default=4.0, help="inverse L2 penalty of the logistic regression")
    ap.add_argument("--data", type=Path, default=None, help="corpus dir (default: shared data)")
    ap.add_argument("--skip-heldout", action="store_true", help="only fit, export and calibrate")
    args = ap.parse_args(argv)
    t0 = time.time()
    records = load_records(args.data)
    texts = [r.text for r in records]
    X = features(texts, args.bits, args.max_n)
    y = np.array([r.label for r in records])
    result = None
    if not args.skip_heldout:
        result = evaluate(records, X, args.c)
        print(f"held-out evaluation ({time.time() - t0:.0f}s):\n\n{markdown_table(result)}\n", flush=True)

    train_groups, calib_groups = split_groups(records, holdout=0.2, salt="calib")
    train = np.array([i for i, r in enumerate(records) if r.group in train_groups])
    calib = np.array([i for i, r in enumerate(records) if r.group in calib_groups])
    weights, bias = fit(X[train], y[train], args.c)
    model = onnx_model(weights, bias)
    scores = linear_scores([texts[i] for i in calib], weights, bias, args.max_n)
    labels = y[calib]
    calibration = calibrate(scores, labels, groups=[records[i].group for i in calib])

    manifest = {
        "name": args.out.name,
        "version": "1",
        "kind": "hashed-ngrams",
        "model": "model.onnx",
        "output": "p_synthetic",
        "bits": args.bits,
        "max_n": args.max_n,
        "languages": ["en"],
        "min_words": 50,
        "description": f"Logistic regression on hashed byte 1-{args.max_n}-grams (2^{args.bits} buckets), "
        "scored by a fused one-pass kernel: the fast CPU detector, P(machine-written) for English prose.",
        "trained_on": f"Fast-DetectGPT raw data (xsum, squad, writing; 8 generators): {len(train)} texts from "
        f"{len(train_groups)} article groups; calibrated on {len(calib)} texts from {len(calib_groups)} other groups",
        "calibration": "calibration.json",
    }
    evaluation = {
        "params": {"bits": args.bits, "max_n": args.max_n, "c": args.c},
        "calibration_split": {
            "auroc": round(auroc(labels, scores), 4),
            "tpr@1%fpr": round(tpr_at_fpr(labels, scores, 0.01), 4),
        },
    }
    if result:
        evaluation.update(heldout=result["rows"], means=result["means"])
    write_detector(args.out, model, manifest, calibration, evaluation)
    print(f"in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
