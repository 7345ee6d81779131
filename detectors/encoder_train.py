"""Train and evaluate the MiniLM detector's head, and the ensemble, on cached embeddings.

    python -m detectors.encoder_train embed [--variant fp32]   # embed the corpus once (resumable cache)
    python -m detectors.encoder_train train                    # held-out eval + ship head.json, calibration

Embedding the ~14k corpus texts takes tens of minutes on two cores, so `embed` caches the
per-layer mean-pooled states in detectors/.cache/ (gitignored) and everything else reuses them:
the logistic-regression head is cheap to refit per held-out split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from detectors.data import Record, load_records, split_groups
from detectors.encoder import DEFAULT_OUT, SAME_SCORES, VARIANT_FILES, apply_head, embed, head_features, load_tokenizer
from detectors.runtime import preprocess
from detectors.train import metrics_row, split_indices

CACHE = Path(__file__).resolve().parent / ".cache"
CHUNK = 256


def corpus_key(records: list[Record], max_tokens: int, variant: str) -> str:
    h = hashlib.sha1()
    for r in records:
        h.update(r.text.encode())
    return f"minilm-{variant}-{max_tokens}-{h.hexdigest()[:10]}"


# The first records (in load order) were embedded before the order below was adopted; they stay
# first so that cached chunks remain valid. The rest go by group hash, so any finished prefix of
# chunks is a random sample of article groups and training can start before the corpus is done.
ORDER_PREFIX = 2816


def embedding_order(records: list[Record]) -> np.ndarray:
    rest = sorted(
        range(ORDER_PREFIX, len(records)), key=lambda i: (hashlib.sha1(records[i].group.encode()).digest(), i)
    )
    return np.array(list(range(min(ORDER_PREFIX, len(records)))) + rest, dtype=np.int64)


def shipped_max_tokens(model_dir: Path = DEFAULT_OUT) -> int:
    """The context the shipped detector reads (its manifest's max_tokens): train on what it will see."""
    return int(json.loads((model_dir / "manifest.json").read_text())["max_tokens"])


def variant_model(model_dir: Path, variant: str) -> Path:
    """The model file of `variant`: its own file, or model.onnx where that is the manifest's variant (setup
    builds only model.onnx)."""
    own = model_dir / VARIANT_FILES[variant]
    manifest = json.loads((model_dir / "manifest.json").read_text())
    if not own.is_file() and manifest.get("variant") == variant:
        return model_dir / manifest["model"]
    return own


def embed_corpus(
    records: list[Record],
    variant: str = "fp32",
    max_tokens: int | None = None,
    model_dir=DEFAULT_OUT,
    max_chunks: int | None = None,
    compute: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, layer means [n, L, H]) of the records embedded so far, computing chunks of 256
    texts in `embedding_order` (at most `max_chunks`; none if not `compute`). Cached as float16."""
    import onnxruntime as ort

    CACHE.mkdir(exist_ok=True)
    max_tokens = max_tokens or shipped_max_tokens(model_dir)
    key = corpus_key(records, max_tokens, variant)
    order = embedding_order(records) if len(records) > ORDER_PREFIX else np.arange(len(records))
    texts = [preprocess(r.text, ("collapse_whitespace",)) for r in records]
    sess = tok = None
    done_idx, parts = [], []
    t0 = time.time()
    for i, start in enumerate(range(0, len(texts), CHUNK)):
        if max_chunks is not None and i >= max_chunks:
            break
        idx = order[start : start + CHUNK]
        part = CACHE / f"{key}.part{i:04d}.npy"
        if not part.is_file():
            if not compute:
                break
            if sess is None:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 2
                model = str(variant_model(model_dir, variant))
                sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
                tok = load_tokenizer(model_dir / "tokenizer.json", max_tokens)
            emb = embed(sess, tok, [texts[j] for j in idx], "layer_means", 32).astype(np.float16)
            np.save(part.with_suffix(".tmp.npy"), emb)
            part.with_suffix(".tmp.npy").rename(part)  # complete chunks only
            print(f"{start + len(idx)}/{len(texts)} {(start + len(idx)) / (time.time() - t0):.1f} docs/s", flush=True)
        done_idx.append(idx)
        parts.append(np.load(part))
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty((0, 0, 0), dtype=np.float16)
    return np.concatenate(done_idx), np.concatenate(parts)


def stack_split(records: list[Record], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Members' part (75% of groups) and the combiner's part (the other 25%) of a training set."""
    member_groups, _ = split_groups([records[i] for i in idx], holdout=0.25, salt="stack")
    in_members = np.array([records[i].group in member_groups for i in idx])
    return idx[in_members], idx[~in_members]


def lexical_stack_scores(records: list[Record]) -> dict:
    """Per held-out split: lexical (char14) fit on the members' part, scores on the combiner part and test."""
    from detectors.train import _fit, _score

    path = CACHE / f"lexical-stack-{corpus_key(records, 0, 'char14')}.json"
    if path.is_file():
        return json.loads(path.read_text())
    out = {}
    for name, train, test in split_indices(records):
        t = time.time()
        members, combiner = stack_split(records, train)
        pipe = _fit("char14", [records[i] for i in members])
        out[name] = {
            "combiner": _score(pipe, [records[i] for i in combiner]).round(6).tolist(),
            "test": _score(pipe, [records[i] for i in test]).round(6).tolist(),
        }
        print(f"lexical {name}: {time.time() - t:.0f}s", flush=True)
    CACHE.mkdir(exist_ok=True)
    path.write_text(json.dumps(out))
    return out


# (layers, ridge penalty) candidates for the head, compared by mean held-out AUROC.
ALL_LAYERS = (0, 1, 2, 3, 4, 5)
HEAD_CONFIGS = ((ALL_LAYERS, 0.1), (ALL_LAYERS, 0.3), (ALL_LAYERS, 1.0), (ALL_LAYERS, 10.0), ((5,), 1.0))


def fit_head(X: np.ndarray, y: np.ndarray, layers, penalty: float) -> dict:
    """A linear head on the chosen layers' standardised mean-pooled states: a ridge direction
    (closed form, seconds where an iterative logistic fit on 2k dimensions took minutes on two
    cores), then a one-dimensional logistic fit on it, folded into one logistic-regression head."""
    from sklearn.linear_model import LogisticRegression

    head = {"layers": list(layers)}
    feats = head_features(head, X)
    mean, scale = feats.mean(0), feats.std(0) + 1e-6
    z = ((feats - mean) / scale).astype(np.float32)  # float32 BLAS: twice as fast, precise enough here
    target = np.where(y == 1, 1.0, -1.0)
    gram = (z.T @ z).astype(np.float64) / len(z) + penalty * np.eye(z.shape[1])
    direction = np.linalg.solve(gram, z.T.astype(np.float64) @ (target - target.mean()) / len(z))
    platt = LogisticRegression(C=1e6).fit((z @ direction)[:, None], y)
    a = float(platt.coef_[0, 0])
    sig = lambda v: [float(f"{x:.6g}") for x in v]  # noqa: E731
    return {**head, "ridge_penalty": penalty, "mean": sig(mean), "scale": sig(scale), "coef": sig(a * direction),
            "intercept": float(platt.intercept_[0]), "output": "layer_means"}  # fmt: skip


def head_scores(head: dict, X: np.ndarray) -> np.ndarray:
    return apply_head(head, head_features(head, X))


def summarize(rows: list[dict]) -> dict:
    """Means per split family, and their average (the number the default detector is chosen by)."""
    means = {}
    for kind in ("domain", "generator"):
        sub = [r for r in rows if r["split"].startswith(kind)]
        means[kind] = {k: round(float(np.mean([r[k] for r in sub])), 4) for k in ("auroc", "tpr@1%fpr", "tpr@5%fpr")}
    mean_auroc = round((means["domain"]["auroc"] + means["generator"]["auroc"]) / 2, 4)
    return {"rows": rows, "means": means, "mean_auroc": mean_auroc}


def heldout_encoder(records, X, y, splits, layers, c) -> tuple[dict, dict]:
    """Held-out table of the head trained per split; also the per-split heads."""
    rows, heads = [], {}
    for name, train, test in splits:
        heads[name] = fit_head(X[train], y[train], layers, c)
        rows.append(metrics_row(name, len(train), y[test], head_scores(heads[name], X[test])))
    return summarize(rows), heads


def lexical_by_record(records: list[Record], idx: np.ndarray) -> dict:
    """Cached held-out lexical scores per split, keyed by position in the embedded subset `idx`."""
    stack = lexical_stack_scores(records)
    where = {int(full): sub for sub, full in enumerate(idx)}
    out = {}
    for name, train, test in split_indices(records):
        _, comb = stack_split(records, train)
        pairs = list(zip(comb, stack[name]["combiner"], strict=True)) + list(
            zip(test, stack[name]["test"], strict=True)
        )
        out[name] = {where[int(i)]: score for i, score in pairs if int(i) in where}
    return out


def heldout_ensemble(records, X, y, splits, layers, c, lexical: dict) -> dict:
    """Held-out table of the stack: members fit on 75% of each split's training groups, combiner on 25%."""
    from detectors.ensemble import combine, fit_combiner

    rows = []
    for name, train, test in splits:
        members, comb = stack_split(records, train)
        head = fit_head(X[members], y[members], layers, c)
        lex = lexical[name]
        comb_scores = np.stack([[lex[i] for i in comb], head_scores(head, X[comb])], axis=1)
        combiner = fit_combiner(comb_scores, y[comb], ["lexical", "minilm"])
        test_scores = np.stack([[lex[i] for i in test], head_scores(head, X[test])], axis=1)
        rows.append(metrics_row(name, len(train), y[test], combine(combiner, test_scores)))
    return summarize(rows)


# Every k-th calibration text is embedded again per variant (CPU time on a shared machine);
# fp16 is a GPU format that CPU kernels emulate slowly, so it gets the smallest sample.
VARIANT_SAMPLE_STEP = {"fp32": 1, "int8": 3, "fp16": 6}


def variant_quality(records, y, calib_idx, X, splits, heads, head, variants) -> dict:
    """Quality of each model variant on (a sample of) the calibration groups: with the shipped head,
    and with each held-out split's head on the sampled texts inside that split's test set."""
    out = {}
    for variant in variants:
        sample = calib_idx[:: VARIANT_SAMPLE_STEP.get(variant, 1)]
        Xv = X[sample]
        if variant != "fp32":
            got, emb = embed_corpus([records[i] for i in sample], variant)
            Xv = np.empty(emb.shape, dtype=emb.dtype)
            Xv[got] = emb
        pos = {int(i): k for k, i in enumerate(sample)}
        scores = head_scores(head, Xv)
        rows = []
        for name, _, test in splits:
            inside = [pos[int(i)] for i in test if int(i) in pos]
            yt = y[sample][inside]
            if 0 < yt.sum() < len(yt):
                rows.append(metrics_row(name, 0, yt, head_scores(heads[name], Xv[inside])))
        out[variant] = {
            "sample": f"every {VARIANT_SAMPLE_STEP.get(variant, 1)}th calibration text",
            "calibration_split": metrics_row("calibration groups", 0, y[sample], scores),
            "heldout_on_calibration_groups": summarize(rows)["means"],
            "fp32_on_same_texts": metrics_row("calibration groups", 0, y[sample], head_scores(head, X[sample])),
            "mean_abs_diff_vs_fp32": round(float(np.abs(scores - head_scores(head, X[sample])).mean()), 4),
            "scores": scores,
            "labels": y[sample],
            "idx": sample,
        }
    return out


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")


def train(out: Path = DEFAULT_OUT, ensemble_out: Path | None = None, variants=("fp32", "int8", "fp16")) -> dict:
    """Evaluate, fit and write the minilm head + calibration, and the ensemble's combiner + calibration."""
    from detectors.ensemble import combine, fit_combiner
    from detectors.runtime import load_detector
    from detectors.train import calibrate, markdown_table, write_calibration

    ensemble_out = ensemble_out or out.parent / "ensemble"
    all_records = load_records()
    idx, X = embed_corpus(all_records, compute=False)  # the embedded part (all of it, given time)
    records = [all_records[i] for i in idx]
    print(f"{len(records)} of {len(all_records)} records embedded", flush=True)
    y = np.array([r.label for r in records])
    splits = split_indices(records)
    comparison = {}
    for layers, c in HEAD_CONFIGS:
        key = f"layers={list(layers)} C={c}"
        comparison[key] = heldout_encoder(records, X, y, splits, layers, c)[0]
        print(f"{key}: {comparison[key]['means']}", flush=True)
    best_key = max(comparison, key=lambda k: comparison[k]["mean_auroc"])
    layers, c = next((lay, cc) for lay, cc in HEAD_CONFIGS if f"layers={list(lay)} C={cc}" == best_key)
    minilm_eval, split_heads = heldout_encoder(records, X, y, splits, layers, c)
    print(f"minilm held-out ({best_key}):\n{markdown_table(minilm_eval)}", flush=True)
    ensemble_eval = heldout_ensemble(records, X, y, splits, layers, c, lexical_by_record(all_records, idx))
    print(f"ensemble held-out:\n{markdown_table(ensemble_eval)}", flush=True)

    train_groups, calib_groups = split_groups(records, holdout=0.2, salt="calib")
    train_idx = np.array([i for i, r in enumerate(records) if r.group in train_groups])
    calib_idx = np.array([i for i, r in enumerate(records) if r.group in calib_groups])
    head = fit_head(X[train_idx], y[train_idx], layers, c)
    manifest = json.loads((out / "manifest.json").read_text())
    quality = variant_quality(records, y, calib_idx, X, splits, split_heads, head, variants)
    shipped = quality[manifest["variant"]]
    write_json(out / "head.json", head)
    groups = [records[i].group for i in shipped["idx"]]
    # The calibration holds for the variant it was measured on (and those scoring the same); the ensemble's too.
    variants = {manifest["name"]: SAME_SCORES[manifest["variant"]]}
    calibration = calibrate(shipped["scores"], shipped["labels"], groups=groups) | {"variants": variants}
    write_calibration(out / "calibration.json", calibration)
    write_json(out / "eval.json", {
        "head": best_key, "max_tokens": manifest["max_tokens"],
        "comparison": {k: {"mean_auroc": v["mean_auroc"], "means": v["means"]} for k, v in comparison.items()},
        "heldout": minilm_eval["rows"], "means": minilm_eval["means"], "mean_auroc": minilm_eval["mean_auroc"],
        "variants": {v: {k: q[k] for k in q if k not in ("scores", "labels", "idx")} for v, q in quality.items()},
        "n_train": len(train_idx), "n_calibration": len(calib_idx), "n_embedded": len(records),
        "n_corpus": len(all_records),
    })  # fmt: skip

    # Ensemble: combiner on half of the calibration groups, calibration on the other half.
    calib = [records[i] for i in shipped["idx"]]
    comb_groups, _ = split_groups(calib, holdout=0.5, salt="ensemble")
    lexical = load_detector("lexical").score([r.text for r in calib])
    member_scores = np.stack([lexical, shipped["scores"]], axis=1)
    part = np.array([r.group in comb_groups for r in calib])
    combiner = fit_combiner(member_scores[part], shipped["labels"][part], ["lexical", "minilm"])
    ens_scores = combine(combiner, member_scores[~part])
    ens_y = shipped["labels"][~part]
    write_json(ensemble_out / "combiner.json", combiner)
    ens_groups = [r.group for r, fit in zip(calib, part, strict=True) if not fit]
    calibration = calibrate(ens_scores, ens_y, groups=ens_groups) | {"variants": variants}
    write_calibration(ensemble_out / "calibration.json", calibration)
    write_json(ensemble_out / "eval.json", {
        "heldout": ensemble_eval["rows"], "means": ensemble_eval["means"], "mean_auroc": ensemble_eval["mean_auroc"],
        "calibration_split": metrics_row("ensemble calibration groups", int(part.sum()), ens_y, ens_scores),
        "protocol": "per held-out split: members fit on 75% of the training groups, combiner on the other 25%",
    })  # fmt: skip
    return {"minilm": minilm_eval, "ensemble": ensemble_eval}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("embed")
    e.add_argument("--variant", choices=list(VARIANT_FILES), default="fp32")
    e.add_argument("--max-tokens", type=int, default=None, help="default: the shipped manifest's")
    t = sub.add_parser("train", help="held-out evaluation, then write head.json, calibration and the ensemble")
    t.add_argument("--out", type=Path, default=DEFAULT_OUT)
    t.add_argument("--ensemble-out", type=Path, default=None)
    t.add_argument("--variants", nargs="+", choices=list(VARIANT_FILES), default=["fp32", "int8", "fp16"])
    sub.add_parser("lexical-stack", help="cache lexical scores for the held-out ensemble evaluation")
    args = ap.parse_args(argv)
    if args.command == "train":
        train(args.out, args.ensemble_out, tuple(args.variants))
    if args.command == "lexical-stack":
        lexical_stack_scores(load_records())
    if args.command == "embed":
        records = load_records()
        idx, out = embed_corpus(records, args.variant, args.max_tokens)
        print(out.shape)


if __name__ == "__main__":
    main()
