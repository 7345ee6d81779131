"""A plain numpy Gemma 3 forward pass (HF modeling_gemma3, eager) on GGUF-named weights, and tiny random ones."""

from __future__ import annotations

import numpy as np

from detectors.onnx_gemma import BLOCK_TENSORS, is_global


def tiny_gemma3(seed: int = 0, layers: int = 3, global_every: int = 2, window: int = 3) -> tuple[dict, dict]:
    """A random Gemma 3 (config, weights) small enough for a fast test, with local and global layers."""
    config = {
        "vocab": 50, "d": 16, "layers": layers, "heads": 2, "kv_heads": 1, "head_dim": 8, "inner": 32,
        "eps": 1e-6, "local_theta": 10_000.0, "global_theta": 1_000_000.0, "global_every": global_every,
        "sliding_window": window, "query_pre_attn_scalar": 10, "positions": 64, "tied": True,
    }  # fmt: skip
    rng = np.random.default_rng(seed)
    d, hd, inner = config["d"], config["head_dim"], config["inner"]
    qd, kvd = config["heads"] * hd, config["kv_heads"] * hd

    def r(*shape, scale=0.3, mean=0.0):
        return (mean + rng.standard_normal(shape) * scale).astype(np.float32)

    shapes = {
        "attn_norm": (d,), "attn_q": (qd, d), "attn_k": (kvd, d), "attn_v": (kvd, d), "attn_q_norm": (hd,),
        "attn_k_norm": (hd,), "attn_output": (d, qd), "post_attention_norm": (d,), "ffn_norm": (d,),
        "ffn_gate": (inner, d), "ffn_up": (inner, d), "ffn_down": (d, inner), "post_ffw_norm": (d,),
    }  # fmt: skip
    w = {"token_embd.weight": r(config["vocab"], d, scale=0.5), "output_norm.weight": r(d, scale=0.1, mean=1.0)}
    for i in range(layers):
        for t in BLOCK_TENSORS:
            w[f"blk.{i}.{t}.weight"] = r(*shapes[t], scale=0.1, mean=1.0) if t.endswith("norm") else r(*shapes[t])
    return config, w


def gemma3_logits(config: dict, w: dict, ids, dtype=np.float64) -> np.ndarray:
    """Logits [T, V] of ONE unpadded sequence `ids` [T], computed in `dtype`."""
    c = config
    heads, kvh, hd, eps = c["heads"], c["kv_heads"], c["head_dim"], c["eps"]
    ids = np.asarray(ids)
    t = len(ids)

    def W(name):
        return w[name].astype(dtype)

    def rms(x, name):  # norm weights as GGUF stores them: Gemma's 1 + w already added
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * W(name)

    def rope(x, theta):  # x [n, T, hd], rotate-half
        inv_freq = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
        ang = np.outer(np.arange(t), inv_freq)
        cos, sin = np.cos(np.r_["-1", ang, ang]), np.sin(np.r_["-1", ang, ang])
        return x * cos + np.concatenate([-x[..., hd // 2 :], x[..., : hd // 2]], axis=-1) * sin

    def gelu_tanh(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    qi, ki = np.arange(t)[:, None], np.arange(t)[None, :]
    causal = ki <= qi
    sliding = causal & (qi - ki < c["sliding_window"])
    h = W("token_embd.weight")[ids] * dtype(np.float32(np.sqrt(c["d"])))
    for i in range(c["layers"]):
        p = f"blk.{i}."
        glob = is_global(c, i)
        theta = c["global_theta"] if glob else c["local_theta"]
        x = rms(h, p + "attn_norm.weight")
        q = (x @ W(p + "attn_q.weight").T).reshape(t, heads, hd).transpose(1, 0, 2)
        k = (x @ W(p + "attn_k.weight").T).reshape(t, kvh, hd).transpose(1, 0, 2)
        v = (x @ W(p + "attn_v.weight").T).reshape(t, kvh, hd).transpose(1, 0, 2)
        q, k = rope(rms(q, p + "attn_q_norm.weight"), theta), rope(rms(k, p + "attn_k_norm.weight"), theta)
        k, v = np.repeat(k, heads // kvh, axis=0), np.repeat(v, heads // kvh, axis=0)
        att = q @ k.transpose(0, 2, 1) * c["query_pre_attn_scalar"] ** -0.5
        att = np.where(causal if glob else sliding, att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = (att @ v).transpose(1, 0, 2).reshape(t, heads * hd) @ W(p + "attn_output.weight").T
        h = h + rms(o, p + "post_attention_norm.weight")
        x = rms(h, p + "ffn_norm.weight")
        mlp = (gelu_tanh(x @ W(p + "ffn_gate.weight").T) * (x @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
        h = h + rms(mlp, p + "post_ffw_norm.weight")
    head = w["token_embd.weight"] if c["tied"] else w["output.weight"]
    return rms(h, "output_norm.weight") @ head.T.astype(dtype)
