"""Does an instruction-tuned LM read machine text differently as its own answer? A held-out experiment.

    .venv/bin/python bench/chat_mode_stats.py stats [--chunks 21]   # per-token statistics, cached, resumable
    .venv/bin/python bench/chat_mode_stats.py eval  [--chunks 21]   # held-out table: SmolLM2 features with / without

SmolLM2-135M-Instruct reads each text twice: as plain text (`<|endoftext|>` + text, what `smollm2` reads) and as
the assistant's answer in its chat template. Binoculars (Hans et al. 2024) compares a base model with its
instruct fine-tune; here the same weights in two contexts play the two parts, so both passes share the
tokenizer and every text token is scored twice, with the two next-token distributions side by side. Per
token: log p and entropy in each context and the cross-entropies between them. Per text: the chat context's
`text_features` and the contrasts (mean log-likelihood gain, Binoculars-style cross ratios).

Texts: the prefix of `detectors.lm_train.sample_records` (64-text chunks, each balanced), cached under
detectors/.cache/chat/. Held-out splits are detectors.train's (a whole domain, a whole generator out).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from detectors.lm_train import CHUNK, SKIP_TOKENS, sample_key, text_sets  # noqa: E402
from detectors.runtime import preprocess  # noqa: E402

CACHE = REPO / "detectors" / ".cache" / "chat"
MODEL = "smollm2-135m"
MAX_TOKENS = 256
CHAT_PREFIX = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nPlease write a passage.<|im_end|>\n<|im_start|>assistant\n"
)
# per token: the 5 "features" statistics in each context, then cross-entropies raw->chat and chat->raw
COLUMNS = 12


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _five(lp: np.ndarray, target: np.ndarray) -> np.ndarray:
    ll = np.take_along_axis(lp, target[:, None], axis=-1)[:, 0]
    p = np.exp(lp)
    rank = (lp > ll[:, None]).sum(-1)
    p_lp = p * lp
    neg_ent, second = p_lp.sum(-1, dtype=np.float64), (p_lp * lp).sum(-1, dtype=np.float64)
    return np.stack([ll, ll * ll, neg_ent, second, np.log1p(rank)], axis=-1), p


def pair_stats(lm, tokenizer, text: str) -> np.ndarray:
    """[n_tokens - 1, COLUMNS] statistics of one text read plainly and as the assistant's answer."""
    ids = tokenizer.encode(text[: MAX_TOKENS * 12]).ids[:MAX_TOKENS]
    prefix = tokenizer.encode(CHAT_PREFIX).ids  # starts with <|endoftext|> as plain text does
    chat = prefix + ids[1:]
    out = []
    for row in (ids, chat):
        arr = np.asarray([row], dtype=np.int64)
        out.append(lm.logits(arr, np.ones_like(arr)).numpy()[0])
    n = len(ids) - 1
    lp_raw = _log_softmax(out[0][:n])
    lp_chat = _log_softmax(out[1][len(prefix) - 1 : len(prefix) - 1 + n])
    target = np.asarray(ids[1:])
    raw5, p_raw = _five(lp_raw, target)
    chat5, p_chat = _five(lp_chat, target)
    x_rc = -np.einsum("tv,tv->t", p_raw, lp_chat)  # raw's distribution scored by chat's log-probs
    x_cr = -np.einsum("tv,tv->t", p_chat, lp_raw)
    return np.concatenate([raw5, chat5, x_rc[:, None], x_cr[:, None]], axis=1).astype(np.float32)


def compute(chunks: int) -> None:
    from tokenizers import Tokenizer

    from detectors.likelihood import CausalLM
    from detectors.lm_build import require_built
    from detectors.runtime import open_session

    sample = text_sets()["sample"]
    directory = require_built(MODEL)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    lm = CausalLM(directory / "model.onnx", open_session)
    key = sample_key(sample)
    for c in range(min(chunks, (len(sample) + CHUNK - 1) // CHUNK)):
        path = CACHE / f"{key}-{c:04d}.npz"
        if path.is_file():
            continue
        start = time.monotonic()
        texts = [preprocess(r.text, ("collapse_whitespace",)) for r in sample[c * CHUNK : (c + 1) * CHUNK]]
        stats = [pair_stats(lm, tokenizer, t) for t in texts]
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez_compressed(partial, lengths=[len(s) for s in stats], stats=np.concatenate(stats))
        partial.replace(path)
        print(f"chunk {c + 1}/{chunks}: {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True)


def load(chunks: int):
    sample = text_sets()["sample"]
    key = sample_key(sample)
    stats = []
    for c in range(chunks):
        path = CACHE / f"{key}-{c:04d}.npz"
        if not path.is_file():
            break
        data = np.load(path)
        stats += np.split(data["stats"], np.cumsum(data["lengths"])[:-1])
    return sample[: len(stats)], stats


def contrast_features(s: np.ndarray, skip: int = SKIP_TOKENS) -> dict[str, float]:
    """Per-text contrasts of the two readings, over the tokens after `skip` (all of a short text's)."""
    s = s[skip:] if len(s) > 2 * skip else s
    ll_raw, ent_raw, ll_chat, ent_chat = s[:, 0], -s[:, 2], s[:, 5], -s[:, 7]
    x_rc, x_cr = s[:, 10], s[:, 11]
    gain = ll_chat - ll_raw
    return {
        "chat.gain_mean": gain.mean(),
        "chat.gain_std": gain.std(),
        "chat.gain_q25": np.quantile(gain, 0.25),
        "chat.gain_q75": np.quantile(gain, 0.75),
        "chat.ent_gain": (ent_raw - ent_chat).mean(),
        "chat.bino_raw_obs": -ll_raw.mean() / x_rc.mean(),  # log-ppl under raw / raw's x-ent against chat
        "chat.bino_chat_obs": -ll_chat.mean() / x_cr.mean(),
        "chat.bino_raw_perf": -ll_chat.mean() / x_rc.mean(),
        "chat.kl_rc": (x_rc - ent_raw).mean(),
        "chat.kl_cr": (x_cr - ent_chat).mean(),
    }


def evaluate(chunks: int) -> dict:
    from detectors.encoder_train import summarize
    from detectors.lm_features import features_from_stats, head_logits
    from detectors.lm_heads import FITTERS, columns_for
    from detectors.train import metrics_row, split_indices

    records, stats = load(chunks)
    raw = features_from_stats([s[:, :5] for s in stats], skip=SKIP_TOKENS)
    chat = features_from_stats([s[:, 5:10] for s in stats], skip=SKIP_TOKENS)
    cols = columns_for("smollm2", raw) | columns_for("smollchat", chat)
    contrasts = [contrast_features(s) for s in stats]
    cols |= {k: np.array([c[k] for c in contrasts]) for k in contrasts[0]}
    y = np.array([r.label for r in records])
    ok = np.all(np.isfinite(np.stack(list(cols.values()), axis=1)), axis=1)
    sets = {
        "smollm2 plain (21)": [k for k in cols if k.startswith("smollm2.")],
        "smollm2 chat context (21)": [k for k in cols if k.startswith("smollchat.")],
        "contrasts only (10)": [k for k in cols if k.startswith("chat.")],
        "plain + contrasts": [k for k in cols if k.startswith(("smollm2.", "chat."))],
        "plain + chat + contrasts": list(cols),
    }
    single = ["chat.gain_mean", "chat.bino_raw_obs", "chat.bino_chat_obs", "chat.kl_rc"]
    table = {}
    for c in (0.1, 1.0):
        for name, features in sets.items():
            rows = []
            for split, train, test in split_indices(records):
                train, test = train[ok[train]], test[ok[test]]
                head = FITTERS["joint"]({k: v[train] for k, v in cols.items()}, features, y[train], c)
                rows.append(
                    metrics_row(split, len(train), y[test], head_logits(head, {k: v[test] for k, v in cols.items()}))
                )
            table[f"{name} C={c}"] = summarize(rows)
    for f in single:  # zero-shot, both signs shown by AUROC vs 0.5
        rows = [metrics_row(s, 0, y[te[ok[te]]], cols[f][te[ok[te]]]) for s, _, te in split_indices(records)]
        table[f"zero-shot {f}"] = summarize(rows)
    return {"texts": len(records), "machine": int(y.sum()), "table": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["stats", "eval"])
    ap.add_argument("--chunks", type=int, default=21)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "chat_mode_stats.json")
    args = ap.parse_args()
    if args.command == "stats":
        compute(args.chunks)
    else:
        result = evaluate(args.chunks)
        brief = {}
        for name, v in result["table"].items():
            d, g = v["means"]["domain"], v["means"]["generator"]
            brief[name] = (
                f"{v['mean_auroc']:.4f}  domains {d['auroc']:.3f} / {d['tpr@1%fpr']:.3f}"
                f"  generators {g['auroc']:.3f} / {g['tpr@1%fpr']:.3f}"
            )
        print(json.dumps(brief, indent=1))
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
