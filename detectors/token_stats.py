"""Per-token statistics of the zero-shot likelihood methods, and their reduction to one score per text.

A causal LM's logits are [B, T, V]: with a 50k vocabulary, 32 texts of 256 tokens are 1.6 GB of
float32. The statistics the methods need are [B, T-1, 2-3]. `stats_graph` builds a small ONNX graph
that computes them from the logits where the logits are (on the GPU with the CUDA provider, fed
through I/O binding), so only the statistics travel to the host; `numpy_token_stats` is the same
arithmetic in numpy, kept as the reference the graph is tested and benchmarked against.

Statistics per next-token position (float32):
- "fast-detectgpt": log p(token) under the scoring model (observer), and the mean and variance of
  log p under the reference model's (performer's) next-token distribution.
- "binoculars": the performer's negative log-likelihood of the token, and the cross-entropy of the
  observer's next-token distribution scored by the performer's log-probs.
- "features" (one model): log p(token), its square, E_p[log p] (minus the entropy), E_p[(log p)^2], and
  log(1 + rank of the token), from which `text_features` derives every zero-shot statistic of a text.
"""

from __future__ import annotations

import numpy as np

OPSET = 17
_ONNX_TYPES = {"tensor(float)": 1, "tensor(float16)": 10, "tensor(bfloat16)": 16, "tensor(double)": 11}


def stats_graph(method: str, two_models: bool, logits_types: tuple[str, ...]) -> bytes:
    """ONNX graph (observer[, performer] logits [B, T, V], input_ids [B, T]) -> stats [B, T-1, k].

    `logits_types` are the LMs' output types as onnxruntime names them ("tensor(float16)", ...).
    """
    from onnx import TensorProto
    from onnx import helper as h

    nodes, consts = [], {}

    def const(name: str, values: list[int]) -> str:
        consts[name] = h.make_tensor(name, TensorProto.INT64, [len(values)], values)
        return name

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(h.make_node(op, inputs, [out], name=out, **attrs))
        return out

    first, last, one, end, seq, vocab = (
        const("first", [0]), const("drop_last", [-1]), const("one", [1]), const("to_end", [2**62]),
        const("seq_axis", [1]), const("vocab_axis", [-1]),
    )  # fmt: skip

    def predicting(logits: str) -> str:
        """Logits at positions 0..T-2 (each predicts the next token), as float32."""
        return node("Cast", [node("Slice", [logits, first, last, seq], f"{logits}_head")], f"{logits}_f32", to=1)

    def rowsum(x: str, out: str) -> str:
        return node("ReduceSum", [x, vocab], out, keepdims=1)

    target = node("Unsqueeze", [node("Slice", ["input_ids", one, end, seq], "next_ids"), vocab], "target")
    lp_obs = node("LogSoftmax", [predicting("observer")], "lp_observer", axis=-1)
    if method == "fast-detectgpt":
        q = (
            node("Softmax", [predicting("performer")], "q_performer", axis=-1)
            if two_models
            else node("Exp", [lp_obs], "q_observer")
        )
        ll = node("GatherElements", [lp_obs, target], "ll", axis=-1)
        mean = rowsum(node("Mul", [q, lp_obs], "q_lp"), "mean")
        second = rowsum(node("Mul", [q, node("Mul", [lp_obs, lp_obs], "lp2")], "q_lp2"), "second")
        var = node("Sub", [second, node("Mul", [mean, mean], "mean2")], "var")
        columns = [ll, mean, var]
    elif method == "features":
        ll = node("GatherElements", [lp_obs, target], "ll", axis=-1)
        p = node("Exp", [lp_obs], "p_observer")
        neg_ent = rowsum(node("Mul", [p, lp_obs], "p_lp"), "neg_entropy")
        second = rowsum(node("Mul", [p, node("Mul", [lp_obs, lp_obs], "lp2")], "p_lp2"), "second")
        # rank = how many tokens the model found likelier than the one written (0 = its top choice)
        above = node("Cast", [node("Greater", [lp_obs, ll], "above_bool")], "above", to=1)
        fone = node("Cast", [one], "fone_vec", to=1)
        logrank = node("Log", [node("Add", [rowsum(above, "rank"), fone], "rank1")], "logrank")
        columns = [ll, node("Mul", [ll, ll], "ll2"), neg_ent, second, logrank]
    elif method == "binoculars":
        lp_perf = node("LogSoftmax", [predicting("performer")], "lp_performer", axis=-1) if two_models else lp_obs
        nll = node("Neg", [node("GatherElements", [lp_perf, target], "ll_performer", axis=-1)], "nll")
        p_obs = node("Exp", [lp_obs], "p_observer")
        x_ent = node("Neg", [rowsum(node("Mul", [p_obs, lp_perf], "p_lp"), "neg_x_ent")], "x_ent")
        columns = [nll, x_ent]
    else:
        raise ValueError(f"unknown likelihood method {method!r}")
    nodes.append(h.make_node("Concat", columns, ["stats"], name="stats", axis=-1))
    names = ("observer", "performer") if two_models else ("observer",)
    inputs = [
        h.make_tensor_value_info(n, _ONNX_TYPES[t], ["B", "T", "V"]) for n, t in zip(names, logits_types, strict=True)
    ]
    inputs.append(h.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "T"]))
    output = h.make_tensor_value_info("stats", TensorProto.FLOAT, ["B", "T1", len(columns)])
    graph = h.make_graph(nodes, f"{method}_token_stats", inputs, [output], initializer=list(consts.values()))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="synthweb")
    model.ir_version = 9  # readable by onnxruntime >= 1.16
    return model.SerializeToString()


def _log_probs(logits: np.ndarray, probs: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """log_softmax over the last axis in float32, and softmax from the same exp pass when asked."""
    logp = logits.astype(np.float32, copy=True)
    logp -= logp.max(axis=-1, keepdims=True)
    e = np.exp(logp)
    total = e.sum(axis=-1, keepdims=True)
    logp -= np.log(total)
    if not probs:
        return logp, None
    e /= total
    return logp, e


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over the last axis of a * b, as batched BLAS dot products ([B, T, V] -> [B, T])."""
    return np.matmul(a[..., None, :], b[..., :, None])[..., 0, 0]


def numpy_token_stats(method: str, observer: np.ndarray, performer: np.ndarray | None, ids: np.ndarray) -> np.ndarray:
    """What `stats_graph` computes, in numpy; `performer` None means the observer alone."""
    target = ids[:, 1:, None]
    lp_obs, p_obs = _log_probs(observer[:, :-1], probs=True)
    if method == "fast-detectgpt":
        q = p_obs if performer is None else _log_probs(performer[:, :-1], probs=True)[1]
        ll = np.take_along_axis(lp_obs, target, axis=-1)[..., 0]
        mean = _rowdot(q, lp_obs)
        lp_obs *= lp_obs  # in place: not needed after this
        return np.stack([ll, mean, _rowdot(q, lp_obs) - mean * mean], axis=-1)
    if method == "features":
        ll = np.take_along_axis(lp_obs, target, axis=-1)[..., 0]
        rank = (lp_obs > ll[..., None]).sum(axis=-1)
        neg_ent = _rowdot(p_obs, lp_obs)
        lp_obs *= lp_obs
        return np.stack([ll, ll * ll, neg_ent, _rowdot(p_obs, lp_obs), np.log1p(rank)], axis=-1).astype(np.float32)
    if method == "binoculars":
        lp_perf = lp_obs if performer is None else _log_probs(performer[:, :-1])[0]
        nll = -np.take_along_axis(lp_perf, target, axis=-1)[..., 0]
        return np.stack([nll, -_rowdot(p_obs, lp_perf)], axis=-1)
    raise ValueError(f"unknown likelihood method {method!r}")


def reduce_token_stats(method: str, stats: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One raw score per text from its attended positions' statistics (NaN with fewer than 2 tokens).

    binoculars: mean nll / mean cross-entropy (low = machine-like); fast-detectgpt: sum(ll - mean)
    / sqrt(sum var), the analytic sampling discrepancy (high = machine-like).
    """
    valid = mask[:, 1:].astype(bool) & mask[:, :-1].astype(bool)
    sums = np.where(valid[..., None], stats, 0.0).astype(np.float64).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "binoculars":
            raw = sums[:, 0] / sums[:, 1]
        else:
            raw = (sums[:, 0] - sums[:, 1]) / np.sqrt(sums[:, 2])
    return np.where(valid.sum(axis=1) > 0, raw, np.nan)


# Per-text zero-shot statistics of one model, in the order `text_features` returns them.
FEATURE_NAMES = (
    "mean_ll", "std_ll", "mean_logrank", "entropy", "fast_detectgpt", "binoculars", "lrr", "top1_rate", "top10_rate",
    "z_q10", "z_below2", "z_q25", "z_q50", "z_q75", "z_mean", "z_std", "ll_q10", "ll_q25", "std_gap",
    "gap_uncertain", "logrank_uncertain",
)  # fmt: skip
Z_FLOOR_VAR = 1e-6  # a next-token distribution this sharp makes every other token infinitely surprising


def text_features(stats: np.ndarray, mask: np.ndarray, max_tokens: int | None = None, skip: int = 0) -> np.ndarray:
    """[B, len(FEATURE_NAMES)] statistics from "features" token statistics (NaN rows with < 2 tokens).

    mean log-likelihood and its spread over tokens; mean log-rank (Mitchell et al.'s log-rank); mean
    entropy; Fast-DetectGPT's analytic discrepancy with the model as its own reference; the single-model
    Binoculars ratio (log-perplexity over entropy); DetectLLM's log-likelihood / log-rank ratio; GLTR's
    share of tokens that were the model's first choice, and among its first ten; and the tail of the per-token
    discrepancy z = (log p(token) - E_p[log p]) / sd_p[log p] (Fast-DetectGPT's statistic token by token):
    its 10% quantile and the share of tokens below -2, i.e. how often, and how far, the text surprises
    the model more than its own samples would (human writing does so more); the rest of z's shape (quartiles,
    mean, spread) and the low quantiles of log p(token); the spread of the gap log p(token) - E_p[log p];
    and that gap and the mean log-rank over the text's uncertain tokens only (entropy above the text's
    median), where a writer's choice says most about who wrote it. With
    `max_tokens`, only the first max_tokens tokens count (a causal LM's prefix statistics are the same);
    with `skip`, the first `skip` predicted tokens do not (texts shorter than that keep them all).
    """
    valid = mask[:, 1:].astype(bool) & mask[:, :-1].astype(bool)
    if max_tokens is not None:
        valid[:, max(0, max_tokens - 1) :] = False
    if skip:
        long_enough = valid.sum(axis=1) > 2 * skip
        valid[long_enough, :skip] = False
    s = np.where(valid[..., None], stats, 0.0).astype(np.float64).sum(axis=1)
    n = valid.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_ll, mean_ll2, neg_ent, second, logrank = (s[:, k] / n for k in range(5))
        var_sum = s[:, 3] - (np.where(valid, stats[..., 2], 0.0).astype(np.float64) ** 2).sum(axis=1)
        logrank_tok = stats[..., 4]
        top1 = (valid & (logrank_tok < 0.5 * np.log(2))).sum(axis=1) / n  # rank 0: log(1 + 0) = 0
        top10 = (valid & (logrank_tok < np.log(10.5))).sum(axis=1) / n  # rank < 10
        gap = np.where(valid, (stats[..., 0] - stats[..., 2]).astype(np.float64), np.nan)  # log p - E_p[log p]
        z = gap / np.sqrt(np.maximum(stats[..., 3] - stats[..., 2] ** 2, Z_FLOOR_VAR))
        has = valid.any(axis=1)

        def quantiles(x, qs):  # per text over its valid tokens (NaN where it has none)
            out = np.full((len(x), len(qs)), np.nan)
            if has.any():
                out[has] = np.nanquantile(x[has], qs, axis=1).T
            return out

        z_q = quantiles(z, [0.1, 0.25, 0.5, 0.75])
        ll_tok = np.where(valid, stats[..., 0].astype(np.float64), np.nan)
        ll_q = quantiles(ll_tok, [0.1, 0.25])
        ent_tok = np.where(valid, -stats[..., 2].astype(np.float64), np.nan)
        median_ent = quantiles(ent_tok, [0.5])[:, 0]
        uncertain = valid & (ent_tok > median_ent[:, None])
        n_unc = uncertain.sum(axis=1)

        def spread(x):  # over valid tokens, NaN (no warning) for texts with none
            m = np.where(valid, x, 0.0).sum(axis=1) / n
            return m, np.sqrt(np.where(valid, (x - m[:, None]) ** 2, 0.0).sum(axis=1) / n)

        z_mean, z_std = spread(z)
        out = np.stack(
            [
                mean_ll,
                np.sqrt(np.maximum(mean_ll2 - mean_ll**2, 0.0)),
                logrank,
                -neg_ent,
                (s[:, 0] - s[:, 2]) / np.sqrt(var_sum),
                -mean_ll / -neg_ent,
                -mean_ll / logrank,
                top1,
                top10,
                z_q[:, 0],
                (valid & (z < -2)).sum(axis=1) / n,
                z_q[:, 1],
                z_q[:, 2],
                z_q[:, 3],
                z_mean,
                z_std,
                ll_q[:, 0],
                ll_q[:, 1],
                spread(gap)[1],
                np.where(uncertain, gap, 0.0).sum(axis=1) / n_unc,
                np.where(uncertain, logrank_tok, 0.0).sum(axis=1) / n_unc,
            ],
            axis=1,
        )
    out[n < 1] = np.nan
    return out


# How a text's statistics change when an instruction-tuned model reads it as its own chat answer (the model's
# chat template before it) instead of as plain text, over the same tokens: the mean, spread and quartiles of
# the per-token gain in log p(token), and the mean drop in entropy.
CONTRAST_NAMES = ("chat_gain_mean", "chat_gain_std", "chat_gain_q25", "chat_gain_q75", "chat_entropy_drop")


def contrast_features(plain: list[np.ndarray], chat: list[np.ndarray], skip: int = 0) -> np.ndarray:
    """[N, len(CONTRAST_NAMES)] from each text's "features" token statistics in its two readings, aligned token
    by token (NaN rows for texts with no statistics); `skip` as in `text_features`."""
    out = np.full((len(plain), len(CONTRAST_NAMES)), np.nan)
    for i, (p, c) in enumerate(zip(plain, chat, strict=True)):
        if len(p) != len(c):
            raise ValueError(f"text {i}: {len(p)} plain and {len(c)} chat token statistics, not one per token")
        if len(p) > 2 * skip:
            p, c = p[skip:], c[skip:]
        if len(p):
            gain = c[:, 0].astype(np.float64) - p[:, 0]
            drop = (c[:, 2].astype(np.float64) - p[:, 2]).mean()  # -E[log p] is the entropy
            out[i] = [gain.mean(), gain.std(), *np.quantile(gain, [0.25, 0.75]), drop]
    return out
