"""Build a Gemma 3 (text) causal LM ONNX graph from a GGUF file (no torch).

Gemma 3 differs from LLaMA (detectors/onnx_llama.py, the model followed here) in: the input embedding
scaled by sqrt(d); RMSNorm on q and k per head before rotary; "sandwich" norms (each block's output is
normed again before the residual add); a GeGLU MLP (tanh GELU); attention scaled by
1/sqrt(query_pre_attn_scalar); and local layers with a sliding window and their own rope base, every
`global_every`-th layer global. Tensors keep their GGUF names. llama.cpp's converter already adds
Gemma's +1 to the norm weights and does not permute Gemma's Q/K rows (rotate-half layout), so both are
used as stored. Interface: detectors/onnx_lm.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detectors.gguf_read import GGUFError, GGUFFile
from detectors.onnx_llama import rope_tables
from detectors.onnx_lm import GraphKit, save_model

BLOCK_TENSORS = (
    "attn_norm", "attn_q", "attn_k", "attn_v", "attn_q_norm", "attn_k_norm", "attn_output",
    "post_attention_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "post_ffw_norm",
)  # fmt: skip
# The GGUF stores only the global rope base; llama.cpp hard-codes 10k for Gemma 3's local layers, as HF
# does (rope_local_base_freq). Every sixth layer is global (HF sliding_window_pattern 6).
LOCAL_THETA, GLOBAL_EVERY = 10_000.0, 6
# Rotary tables cover this many positions (the model's 32768 would be 64 MiB of tables for nothing).
POSITIONS = 8192


def gemma3_checkpoint(gg: GGUFFile) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, float32 weights under GGUF names) of a Gemma 3 GGUF file."""
    if gg.architecture != "gemma3":
        raise GGUFError(f"{gg.path}: architecture {gg.architecture!r}, expected 'gemma3'")
    a, m = "gemma3.", gg.meta
    try:
        heads = int(m[a + "attention.head_count"])
        head_dim = int(m[a + "attention.key_length"])
        config = {
            "vocab": len(m["tokenizer.ggml.tokens"]),
            "d": int(m[a + "embedding_length"]),
            "layers": int(m[a + "block_count"]),
            "heads": heads,
            "kv_heads": int(m.get(a + "attention.head_count_kv", heads)),
            "head_dim": head_dim,
            "inner": int(m[a + "feed_forward_length"]),
            "eps": float(m[a + "attention.layer_norm_rms_epsilon"]),
            "local_theta": LOCAL_THETA,
            "global_theta": float(m.get(a + "rope.freq_base", 1_000_000.0)),
            "global_every": GLOBAL_EVERY,
            "sliding_window": int(m[a + "attention.sliding_window"]),
            # Not in the file; llama.cpp uses head_dim for every size but 27B, as does HF's config (256).
            "query_pre_attn_scalar": head_dim,
            "positions": min(POSITIONS, int(m.get(a + "context_length", POSITIONS))),
            "tied": "output.weight" not in gg.names(),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise GGUFError(f"{gg.path}: Gemma 3 metadata lacks or mangles {exc}") from exc
    if m.get(a + "rope.scaling.type") not in (None, "none"):
        raise GGUFError(f"{gg.path}: rope scaling {m[a + 'rope.scaling.type']!r} is not supported")
    names = ["token_embd.weight", "output_norm.weight"] + ([] if config["tied"] else ["output.weight"])
    names += [f"blk.{i}.{t}.weight" for i in range(config["layers"]) for t in BLOCK_TENSORS]
    return config, {name: gg.tensor(name) for name in names}


def is_global(config: dict, layer: int) -> bool:
    return (layer + 1) % config["global_every"] == 0


def build_gemma3_model(config: dict, weights: dict[str, np.ndarray]):
    """The ONNX ModelProto of a Gemma 3 causal LM with these weights (config as gemma3_checkpoint gives)."""
    c = config
    d, hd, heads, kvh, inner, vocab = c["d"], c["head_dim"], c["heads"], c["kv_heads"], c["inner"], c["vocab"]
    if heads % kvh:
        raise GGUFError(f"{heads} attention heads is not a multiple of {kvh} key/value heads")
    g = GraphKit(weights, "Gemma 3")
    node, weight = g.node, g.weight

    def rms_norm(x: str, name: str, size: int, out: str) -> str:  # the weights already hold Gemma's 1 + w
        ms = node("ReduceMean", [node("Mul", [x, x], out + "_sq"), "axm1"], out + "_ms", keepdims=1)
        inv = node("Reciprocal", [node("Sqrt", [node("Add", [ms, "eps"], out + "_mse")], out + "_rms")], out + "_inv")
        return node("Mul", [node("Mul", [x, inv], out + "_n"), weight(name, (size,))], out)

    def linear(x: str, name: str, n_in: int, n_out: int, out: str) -> str:
        # GGUF (numpy order) stores [out, in]; transpose once here so the graph is a plain MatMul.
        w = weight(name, (n_out, n_in), value=np.ascontiguousarray(weights.get(name, np.empty(0)).T))
        return node("MatMul", [x, w], out)

    def rotate(x: str, cos: str, sin: str, out: str) -> str:  # x * cos + rotate_half(x) * sin, x [B, T, n, hd]
        lo, hi = g.split(x, "half", [out + "_lo", out + "_hi"])
        rotated = node("Concat", [node("Neg", [hi], out + "_neg"), lo], out + "_rot", axis=-1)
        return node("Add", [node("Mul", [x, cos], out + "_c"), node("Mul", [rotated, sin], out + "_s")], out)

    g.init("eps", np.array(c["eps"], dtype=np.float32))
    g.init("attn_scale", np.array(c["query_pre_attn_scalar"] ** -0.5, dtype=np.float32))
    g.init("embed_scale", np.array(np.sqrt(np.float32(d)), dtype=np.float32))  # rounded to float32 as HF does
    g.attention_shapes(heads, kvh, hd)
    g.const("window", c["sliding_window"])
    pos, attn_bias = g.positions_and_bias(bias_rank=5)  # [B, 1, 1, T, T]
    # Local layers also mask keys `window` or more positions back (HF and llama.cpp: q - k < window).
    dist = node("Sub", [node("Unsqueeze", [pos, "axm1"], "pos_q"), node("Unsqueeze", [pos, "ax1"], "pos_k")], "dist")
    near = node("Unsqueeze", [node("Less", [dist, "window"], "near3"), "ax12"], "near")  # [B, 1, 1, T, T]
    local_bias = node("Where", [near, attn_bias, "mask_value"], "local_bias")  # mask_value: onnx_lm.MASK_VALUE
    rope = {}
    for kind in ("local", "global"):
        cos, sin = rope_tables({"head_dim": hd, "theta": c[f"{kind}_theta"], "positions": c["positions"]})
        # cos/sin [B, T, 1, hd] broadcast over the heads of [B, T, n, hd].
        rope[kind] = tuple(
            node("Unsqueeze", [node("Gather", [g.init(f"{kind}_{f}_table", t), pos], f"{kind}_{f}3"), "ax_2"],
                 f"{kind}_{f}")
            for f, t in (("cos", cos), ("sin", sin))
        )  # fmt: skip
    embed = weight("token_embd.weight", (vocab, d))
    h = node("Mul", [node("Gather", [embed, "input_ids"], "h_embed"), "embed_scale"], "h0")

    for i in range(c["layers"]):
        p, a = f"blk.{i}.", f"l{i}"
        cos, sin = rope["global" if is_global(c, i) else "local"]
        bias = attn_bias if is_global(c, i) else local_bias
        x = rms_norm(h, p + "attn_norm.weight", d, f"{a}_ln1")
        q = node("Reshape", [linear(x, p + "attn_q.weight", d, heads * hd, f"{a}_q"), "q4"], f"{a}_q4")
        q = rotate(rms_norm(q, p + "attn_q_norm.weight", hd, f"{a}_qn"), cos, sin, f"{a}_qr")
        k = node("Reshape", [linear(x, p + "attn_k.weight", d, kvh * hd, f"{a}_k"), "kv4"], f"{a}_k4")
        k = rotate(rms_norm(k, p + "attn_k_norm.weight", hd, f"{a}_kn"), cos, sin, f"{a}_kr")
        v = node("Reshape", [linear(x, p + "attn_v.weight", d, kvh * hd, f"{a}_v"), "kv4"], f"{a}_v4")
        ctx = g.attention(q, k, v, bias, "attn_scale", a)
        attn = linear(ctx, p + "attn_output.weight", heads * hd, d, f"{a}_o")
        # Sandwich norms: the block's output is normed before it joins the residual stream.
        h = node("Add", [h, rms_norm(attn, p + "post_attention_norm.weight", d, f"{a}_pan")], f"{a}_h_attn")
        x = rms_norm(h, p + "ffn_norm.weight", d, f"{a}_ln2")
        gate = node("Gelu", [linear(x, p + "ffn_gate.weight", d, inner, f"{a}_gate")], f"{a}_gelu", approximate="tanh")
        act = node("Mul", [gate, linear(x, p + "ffn_up.weight", d, inner, f"{a}_up")], f"{a}_act")
        mlp = linear(act, p + "ffn_down.weight", inner, d, f"{a}_mlp")
        h = node("Add", [h, rms_norm(mlp, p + "post_ffw_norm.weight", d, f"{a}_pfn")], f"{a}_h")

    x = rms_norm(h, "output_norm.weight", d, "h_final")
    if c["tied"]:
        head = node("Transpose", [embed], "lm_head_t", perm=[1, 0])  # tied: folded once at session build
    else:
        head_t = np.ascontiguousarray(weights.get("output.weight", np.empty(0)).T)
        head = weight("output.weight", (vocab, d), value=head_t)
    node("MatMul", [x, head], "logits")  # no final logit soft-capping in Gemma 3
    return g.model("gemma3_lm", vocab)


def export_gemma3(gguf_path: Path, out_file: Path) -> dict:
    """Convert a Gemma 3 GGUF file to `out_file`; returns the config."""
    config, weights = gemma3_checkpoint(GGUFFile(gguf_path))
    save_model(build_gemma3_model(config, weights), out_file)
    return config
