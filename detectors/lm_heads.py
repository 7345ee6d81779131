"""Held-out evaluation of the LM statistics, and the heads and calibrations of the shipped LM detectors.

Called by `python -m detectors.lm_train train` on the cached per-token statistics. Every held-out row
holds out a whole domain or a whole generator (detectors/train.py `heldout_splits`, applied to the
sample): zero-shot rows use one statistic with its published sign and no fit at all; head rows fit a
logistic regression on the training side only. The shipped heads are fit on the sample's training groups
and calibrated on its calibration groups (article groups never trained on).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from detectors.data import Record, split_groups
from detectors.token_stats import CONTRAST_NAMES, FEATURE_NAMES

SHIPPED = Path(__file__).resolve().parent / "shipped"
HELDOUT_FILE = Path(__file__).resolve().parent / "lm_eval_heldout.json"
# Published direction of each statistic: +1 where larger means machine-written.
SIGNS = {
    "mean_ll": 1, "mean_logrank": -1, "entropy": -1, "fast_detectgpt": 1, "binoculars": -1, "lrr": 1,
    "top1_rate": 1, "top10_rate": 1, "z_q10": 1, "z_below2": -1, "z_q25": 1, "z_q50": 1, "z_q75": 1, "z_mean": 1,
    "z_std": -1, "ll_q10": 1, "ll_q25": 1, "std_gap": -1, "gap_uncertain": 1, "logrank_uncertain": -1,
}  # fmt: skip
# v2: the per-token discrepancy's tail features (token_stats.text_features) and the whole stratified sample.
# v3: the shape of the per-token discrepancy and likelihood, the uncertain tokens' features, 32 tokens skipped.
# v4 (zeroshot only): the minilm detector's logit as one more column (detectors/member_columns.py).
# v5 (zeroshot only): one logistic head per source (each model's statistics, minilm's column), logits summed.
HEADS_VERSION = "3"
PENALTIES = (0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths (C) tried for the heads, chosen held-out
SMOLLM2 = [f"smollm2-135m.{f}" for f in FEATURE_NAMES]
GEMMA3 = [f"gemma3-270m.{f}" for f in FEATURE_NAMES]
SMOLLM2_CHAT = [f"smollm2-135m.{f}" for f in CONTRAST_NAMES]
SHIPPED_DETECTORS = {
    "smollm2": {
        "features": SMOLLM2,
        "description": "Zero-shot statistics of SmolLM2-135M (log-likelihood, log-rank, entropy, Fast-DetectGPT, "
        "Binoculars ratio, GLTR ranks) combined by a small logistic head; P(machine-written) for English prose.",
    },
    "smollm2-chat": {
        "features": SMOLLM2 + SMOLLM2_CHAT,
        "version": "1",
        "description": "SmolLM2-135M-Instruct reads each text twice, plainly and as its own answer in its chat "
        "template: its zero-shot statistics and how the chat reading changes them (a chat model's text gains "
        "more likelihood there), combined by a small logistic head; P(machine-written) for English prose.",
    },
    "gemma3": {
        "features": GEMMA3,
        "description": "Zero-shot statistics of Gemma 3 270M (base) combined by a small logistic head; "
        "P(machine-written) for English prose.",
    },
    "zeroshot": {
        "features": SMOLLM2 + GEMMA3 + ["minilm.logit"],
        "members": ["minilm"],
        "combine": "sum",
        "version": "5",
        "description": "Zero-shot statistics of two language models, SmolLM2-135M and Gemma 3 270M, each on its own "
        "tokenization, and the minilm detector's score: a small logistic head per source, their logits added "
        "per text; P(machine-written) for English prose.",
    },
}


def columns_for(model: str, X: np.ndarray) -> dict[str, np.ndarray]:
    return {f"{model}.{f}": X[:, k] for k, f in enumerate(FEATURE_NAMES)}


def fit_head(cols: dict[str, np.ndarray], features: list[str], y: np.ndarray, c: float) -> dict:
    """A logistic regression on standardised `features`, as head.json stores it."""
    from sklearn.linear_model import LogisticRegression

    x = np.stack([cols[f] for f in features], axis=1)
    mean, scale = x.mean(0), x.std(0) + 1e-9
    fit = LogisticRegression(C=c, max_iter=1000).fit((x - mean) / scale, y)
    r = lambda v: [float(f"{a:.6g}") for a in v]  # noqa: E731
    return {"features": features, "C": c, "mean": r(mean), "scale": r(scale), "coef": r(fit.coef_[0]),
            "intercept": float(fit.intercept_[0])}  # fmt: skip


def blocks_of(features: list[str]) -> list[list[str]]:
    """The features grouped by source (a model's statistics, a member's column), in their order."""
    blocks: dict[str, list[str]] = {}
    for f in features:
        blocks.setdefault(f.split(".", 1)[0], []).append(f)
    return list(blocks.values())


def fit_sum_head(cols: dict[str, np.ndarray], features: list[str], y: np.ndarray, c: float) -> dict:
    """One logistic regression per source (`blocks_of`), their logits added: a single linear head as head.json
    stores it. Each source's weights are fit without the others', so none leans on a combination of the
    sources that holds only on the training domains (held-out domains gained; detectors/README.md, v5)."""
    heads = [fit_head(cols, block, y, c) for block in blocks_of(features)]
    merged = {k: [v for h in heads for v in h[k]] for k in ("features", "mean", "scale", "coef")}
    return {**merged, "C": c, "intercept": float(sum(h["intercept"] for h in heads)),
            "combine": "sum of one logistic head per source"}  # fmt: skip


FITTERS = {"joint": fit_head, "sum": fit_sum_head}


def zero_shot_head(cols: dict[str, np.ndarray], feature: str, y: np.ndarray) -> dict:
    """One statistic with its published sign, mapped to P(synthetic) by a 1-D logistic (ranking unchanged)."""
    head = fit_head(cols, [feature], y, 1e6)
    sign = SIGNS[feature.split(".", 1)[1]]
    if np.sign(head["coef"][0]) != sign:  # never let the fit flip a zero-shot detector's direction
        head["coef"] = [0.0]
    return head | {"C": None}


def heldout_rows(records: list[Record], cols: dict, features: list[str] | None, c: float | None, zero_shot=None,
                 split_cols: dict | None = None, combine: str = "joint"):  # fmt: skip
    """Rows of the held-out table for a head on `features` (or the zero-shot statistic `zero_shot`).

    `split_cols` maps a split's name to columns of its own (a member's, fit without the held-out part);
    `combine` names the head's fitter (`FITTERS`).
    """
    from detectors.encoder_train import summarize
    from detectors.lm_features import head_logits
    from detectors.train import metrics_row, split_indices

    y = np.array([r.label for r in records])
    ok = np.all(np.isfinite(np.stack(list(cols.values()), axis=1)), axis=1)
    rows = []
    for name, train, test in split_indices(records):
        train, test = train[ok[train]], test[ok[test]]
        if len(set(y[test])) < 2 or len(set(y[train])) < 2:
            continue  # only in a partial cache
        cols_here = cols | (split_cols or {}).get(name, {})
        if zero_shot:
            scores = SIGNS[zero_shot.split(".", 1)[1]] * cols[zero_shot][test]
        else:
            head = FITTERS[combine]({k: v[train] for k, v in cols_here.items()}, features, y[train], c)
            scores = head_logits(head, {k: v[test] for k, v in cols_here.items()})
        rows.append(metrics_row(name, len(train), y[test], scores))
    return summarize(rows)


def family_key(family: str, combine: str, c: float) -> str:
    """The held-out table's row name of a head: "head all models C=1.0", "head all models, summed per source C=1.0"."""
    return f"head {family}{', summed per source' if combine == 'sum' else ''} C={c}"


def write_bench_scores(name: str, version: str, texts: list[Record], scores: np.ndarray) -> Path:
    """Calibration texts' scores for bench/estimation_mixtures.py --scores-file (keys: text, label, generator)."""
    from detectors.lm_train import CACHE

    path = CACHE / f"{name}-calibration-scores.npz"
    keys = [record_key(r) for r in texts]
    np.savez(path, detector=f"{name} v{version}", keys=np.array(keys), scores=np.asarray(scores))
    return path


def record_key(r) -> str:
    return hashlib.sha1(f"{r.label}|{r.generator}|{r.text}".encode()).hexdigest()


def member_cpu_ms(name: str) -> int:
    """A member detector's CPU cost per document, from its shipped manifest."""
    return int(json.loads((SHIPPED / name / "manifest.json").read_text())["cost"]["cpu_ms_per_doc"])


def write_detector(name: str, manifest: dict, head: dict, calibration: dict, evaluation: dict) -> Path:
    from detectors.train import write_calibration

    out = SHIPPED / name
    out.mkdir(parents=True, exist_ok=True)
    for file, obj in (("manifest.json", manifest), ("head.json", head), ("eval.json", evaluation)):
        (out / file).write_text(json.dumps(obj, indent=1) + "\n")
    write_calibration(out / "calibration.json", calibration)
    return out


def _columns(texts: list[Record], models, require_all: bool = True, chat=()) -> tuple[int, dict[str, np.ndarray]]:
    """(texts covered by every model's cache, "model.feature" columns over them).

    With `require_all` False, models with no cached statistics at all are left out instead of covering nothing.
    Models in `chat` add their chat contrasts (`CONTRAST_NAMES`) from their chat reading's cache.
    """
    from detectors.lm_train import load_columns

    counts, cols = [], {}
    for model in models:
        n, values = load_columns(model, texts)
        if n or require_all:
            counts.append(n)
        if n:
            cols[model] = columns_for(model, values)
        if model in chat:
            n_chat, values = load_columns(model, texts, reading="chat")
            counts.append(n_chat)
            cols[f"{model}@chat"] = {f"{model}.{f}": values[:, k] for k, f in enumerate(CONTRAST_NAMES)}
    covered = min(counts, default=0)
    return covered, {k: v[:covered] for c in cols.values() for k, v in c.items()}


def train(sample: list[Record], rest: list[Record] = (), models=None, detectors: dict | None = None,
          chat=(), heldout_file: Path = HELDOUT_FILE) -> dict:  # fmt: skip
    """Held-out tables for every statistic and head on `sample`; then fit, calibrate and write `detectors`.

    `rest` (the calibration groups' other texts) joins the calibration when its statistics are cached.
    `detectors` maps a shipped name to {features, description}; features may span models. Models in `chat`
    add their chat contrasts (their chat reading's cache must cover the texts used).
    """
    from detectors.lm_build import MODELS
    from detectors.lm_features import head_logits, sigmoid
    from detectors.lm_train import MAX_TOKENS, SKIP_TOKENS
    from detectors.train import calibrate, metrics_row

    covered, cols = _columns(sample, models or MODELS, require_all=False, chat=chat)
    records = sample[:covered]
    y = np.array([r.label for r in records])
    print(f"{covered} of {len(sample)} sample texts have statistics of {sorted({k.split('.')[0] for k in cols})}")
    if covered < len(sample):
        short = "a model's statistics stop short: finish its `lm_train stats`, or --only the other models' detectors"
        print(f"warning: what follows reads {covered} of {len(sample)} sample texts; {short}", flush=True)
    lm_cols = [k for k in cols if k.split(".", 1)[1] not in CONTRAST_NAMES]
    chat_cols, split_cols = [k for k in cols if k not in lm_cols], {}
    member = None
    named = {m for spec in (detectors or {}).values() for m in spec.get("members", [])}
    if named:
        from detectors.member_columns import COLUMN, MEMBER, MinilmColumns

        if named != {MEMBER}:
            raise SystemExit(f"only {MEMBER!r} can be a member of an LM head so far, not {sorted(named - {MEMBER})}")
        member = MinilmColumns.from_cache()
        cols[COLUMN] = member.for_shipping(records)
        split_cols = {name: {COLUMN: col} for name, col in member.heldout(records).items()}
    table = {}
    for f in cols:
        if f.split(".", 1)[1] in SIGNS:
            table[f"zero-shot {f}"] = heldout_rows(records, cols, None, None, zero_shot=f)
    model_names = dict.fromkeys(k.split(".")[0] for k in lm_cols)
    families = {m: [f for f in lm_cols if f.startswith(m + ".")] for m in model_names}
    for m in model_names:
        if any(f.startswith(m + ".") for f in chat_cols):
            families[f"{m} + chat reading"] = families[m] + [f for f in chat_cols if f.startswith(m + ".")]
    if len(model_names) > 1:
        families["all models"] = lm_cols
        if chat_cols:
            families["all models + chat reading"] = lm_cols + chat_cols
    if member:  # with the member, and the member alone on the same splits (one feature ranks as its logit)
        families["all models + minilm"] = lm_cols + [COLUMN]
        if chat_cols:
            families["all models + chat reading + minilm"] = lm_cols + chat_cols + [COLUMN]
        table[f"member {COLUMN}"] = heldout_rows(records, cols, [COLUMN], 1.0, split_cols=split_cols)
    for fam, feats in families.items():
        for combine in ("joint", "sum") if len(blocks_of(feats)) > 1 else ("joint",):
            for c in PENALTIES:
                table[family_key(fam, combine, c)] = heldout_rows(records, cols, feats, c, split_cols=split_cols,
                                                                  combine=combine)  # fmt: skip
    for key, result in table.items():
        d, g = result["means"]["domain"], result["means"]["generator"]
        print(f"{key:55s} {result['mean_auroc']:.4f}  domains {d['auroc']:.3f} / {d['tpr@1%fpr']:.3f}"
              f"  generators {g['auroc']:.3f} / {g['tpr@1%fpr']:.3f}", flush=True)  # fmt: skip
    setup = {"max_tokens": MAX_TOKENS, "skip_tokens": SKIP_TOKENS, "n_texts": covered}
    heldout_file.write_text(json.dumps(setup | {"table": table}, indent=1) + "\n")

    train_groups, calib_groups = split_groups(records, holdout=0.2, salt="calib")
    fit_idx = np.array([i for i, r in enumerate(records) if r.group in train_groups])
    cal_idx = np.array([i for i, r in enumerate(records) if r.group in calib_groups])
    finite = np.all(np.isfinite(np.stack(list(cols.values()), axis=1)), axis=1)
    fit_idx, cal_idx = fit_idx[finite[fit_idx]], cal_idx[finite[cal_idx]]
    n_rest, rest_cols = _columns(list(rest), sorted({k.split(".")[0] for k in lm_cols}), chat=chat)
    print(f"calibration: {len(cal_idx)} texts of the sample and {n_rest} of the {len(rest)} other calibration texts")
    if not n_rest:
        rest_cols = {k: v[:0] for k, v in cols.items()}
    elif member:
        rest_cols[COLUMN] = member.for_shipping(list(rest)[:n_rest])
    cal_records = [records[i] for i in cal_idx] + list(rest)[:n_rest]
    cal_cols = {k: np.concatenate([v[cal_idx], rest_cols[k]]) for k, v in cols.items()}
    cal_ok = np.all(np.isfinite(np.stack(list(cal_cols.values()), axis=1)), axis=1)
    cal_records = [r for r, ok in zip(cal_records, cal_ok, strict=True) if ok]
    cal_cols = {k: v[cal_ok] for k, v in cal_cols.items()}
    cal_y = np.array([r.label for r in cal_records])
    written = {}
    for name, spec in (detectors or {}).items():
        feats = spec["features"]
        if missing := [f for f in feats if f not in cols]:
            print(f"{name}: not written, no columns for {missing[:3]}... (is its cache there? --chat?)", flush=True)
            continue
        sub = {k: v[fit_idx] for k, v in cols.items()}
        if len(feats) == 1:
            head, key = zero_shot_head(sub, feats[0], y[fit_idx]), f"zero-shot {feats[0]}"
        else:
            fam = next(f for f, fs in families.items() if set(fs) == set(feats))
            combine = spec.get("combine", "joint")
            key = max((family_key(fam, combine, c) for c in PENALTIES), key=lambda k: table[k]["mean_auroc"])
            head = FITTERS[combine](sub, feats, y[fit_idx], float(key.rsplit("=", 1)[1]))
        p_cal = sigmoid(head_logits(head, cal_cols))
        calibration = calibrate(p_cal, cal_y, groups=[r.group for r in cal_records])
        calibration["variants"] = {name: ["fp32"]}  # measured on fp32 only (Gemma has no fp16 build)
        version = spec.get("version", HEADS_VERSION)
        write_bench_scores(name, version, cal_records, p_cal)
        evaluation = {
            "heldout_key": key, "max_tokens": MAX_TOKENS, "skip_tokens": SKIP_TOKENS,
            **{k: table[key][k] for k in ("rows", "means", "mean_auroc")},
            "calibration_split": metrics_row("calibration groups", len(fit_idx), cal_y, p_cal),
            "n_sample": covered, "protocol": "stratified sample of the corpus (detectors/lm_train.py); whole domain / "
            "generator held out per row; heads fit on the training side only",
        }  # fmt: skip
        members = list(spec.get("members", []))
        used = sorted({f.split(".")[0] for f in feats} - set(members))
        cpu_ms = sum(MODELS[m]["cpu_ms_per_doc"] for m in used) + sum(member_cpu_ms(m) for m in members)
        cpu_ms += sum(MODELS[m]["chat_cpu_ms_per_doc"] for m in used if f"{m}.{CONTRAST_NAMES[0]}" in feats)
        if members:
            evaluation["protocol"] += f"; {', '.join(members)} column out of domain (detectors/member_columns.py)"
        manifest = {
            "name": name, "version": version, "kind": "lm-features", "variant": "fp32",
            "models": [{"name": m, "max_tokens": MAX_TOKENS, "skip_tokens": SKIP_TOKENS} for m in used],
            "head": "head.json", **({"members": members} if members else {}),
            "build": f"synthweb detectors build {' '.join(used)}", "preprocess": ["collapse_whitespace"],
            "languages": ["en"], "min_words": 50, "description": spec["description"],
            "trained_on": "Fast-DetectGPT raw data (xsum, squad, writing; 8 generators), stratified sample of the "
            f"lexical detector's training groups; calibrated on {len(cal_records)} texts of its calibration groups",
            "calibration": "calibration.json",
            "cost": {"cpu_ms_per_doc": cpu_ms, "gpu_ms_per_doc": None,
                     "measured": "corpus texts (~200 tokens), 2 CPU threads, bench/lm_bench.py; no GPU lent"},
        }  # fmt: skip
        written[name] = write_detector(name, manifest, head, calibration, evaluation)
        print(f"{name}: {key}; calibration {evaluation['calibration_split']}", flush=True)
    return {"table": table, "written": written}
