"""Build a LLaMA-style causal LM ONNX graph from a Hugging Face checkpoint directory (no torch).

Covers LlamaForCausalLM and its close relatives (MistralForCausalLM, Qwen2ForCausalLM): RMSNorm,
rotary position embeddings (rotate-half convention, no rope scaling), grouped-query attention with
optional q/k/v biases, a SiLU-gated MLP, and an LM head that is tied or separate. Tensor names and
nn.Linear layout (`y = x @ W.T`) as `save_pretrained` writes them. Interface: detectors/onnx_lm.py.
Mistral's sliding window is not applied: it only matters for texts longer than the window (4096).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detectors.onnx_lm import CheckpointError, GraphKit, read_config, read_weights, save_model


def llama_dims(config: dict) -> dict:
    """The hyper-parameters the graph needs, with HF defaults, checked for what the builder supports."""
    try:
        d = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        dims = {
            "vocab": int(config["vocab_size"]),
            "d": d,
            "layers": int(config["num_hidden_layers"]),
            "heads": heads,
            "kv_heads": int(config.get("num_key_value_heads") or heads),
            "head_dim": int(config.get("head_dim") or d // heads),
            "inner": int(config["intermediate_size"]),
            "eps": float(config.get("rms_norm_eps", 1e-6)),
            "theta": float(config.get("rope_theta", 10000.0)),
            "positions": int(config.get("max_position_embeddings", 2048)),
            "tied": bool(config.get("tie_word_embeddings", False)),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"LLaMA-style config lacks or mangles {exc}") from exc
    if config.get("rope_scaling"):
        raise CheckpointError(f"rope_scaling {config['rope_scaling']!r} is not supported by the built-in builder")
    if config.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"hidden_act {config.get('hidden_act')!r} is not supported (only silu)")
    if heads % dims["kv_heads"]:
        raise CheckpointError(f"num_attention_heads {heads} is not a multiple of num_key_value_heads")
    return dims


def rope_tables(dims: dict) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [positions, head_dim] in Hugging Face's rotate-half layout (frequencies repeated)."""
    hd = dims["head_dim"]
    inv_freq = 1.0 / dims["theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    angles = np.outer(np.arange(dims["positions"], dtype=np.float64), inv_freq)
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def build_llama_model(config: dict, weights: dict[str, np.ndarray]):
    """The ONNX ModelProto of a LLaMA-style causal LM with these weights."""
    dims = llama_dims(config)
    d, hd, heads, kvh, inner = dims["d"], dims["head_dim"], dims["heads"], dims["kv_heads"], dims["inner"]
    g = GraphKit(weights, "LLaMA-style")
    node, weight = g.node, g.weight

    def rms_norm(x: str, name: str, out: str) -> str:
        ms = node("ReduceMean", [node("Mul", [x, x], out + "_sq"), "axm1"], out + "_ms", keepdims=1)
        inv = node("Reciprocal", [node("Sqrt", [node("Add", [ms, "eps"], out + "_mse")], out + "_rms")], out + "_inv")
        return node("Mul", [node("Mul", [x, inv], out + "_n"), weight(name, (d,))], out)

    def linear(x: str, prefix: str, n_in: int, n_out: int, out: str) -> str:
        # nn.Linear stores [out, in]; transpose once here so the graph is a plain MatMul.
        w_name = f"{prefix}.weight"
        w = weight(w_name, (n_out, n_in), value=np.ascontiguousarray(weights.get(w_name, np.empty(0)).T))
        y = node("MatMul", [x, w], out + ("_mm" if g.has(f"{prefix}.bias") else ""))
        return node("Add", [y, weight(f"{prefix}.bias", (n_out,))], out) if g.has(f"{prefix}.bias") else y

    def rotate(x: str, out: str) -> str:  # x * cos + rotate_half(x) * sin, x [B, T, n, hd]
        lo, hi = g.split(x, "half", [out + "_lo", out + "_hi"])
        rotated = node("Concat", [node("Neg", [hi], out + "_neg"), lo], out + "_rot", axis=-1)
        return node("Add", [node("Mul", [x, "cos"], out + "_c"), node("Mul", [rotated, "sin"], out + "_s")], out)

    g.init("eps", np.array(dims["eps"], dtype=np.float32))
    g.init("inv_sqrt_dh", np.array(1.0 / np.sqrt(hd), dtype=np.float32))
    g.attention_shapes(heads, kvh, hd)
    cos, sin = rope_tables(dims)
    pos, attn_bias = g.positions_and_bias(bias_rank=5)  # [B, 1, 1, T, T]
    # cos/sin [B, T, 1, hd] broadcast over the heads of [B, T, n, hd].
    node("Unsqueeze", [node("Gather", [g.init("cos_table", cos), pos], "cos3"), "ax_2"], "cos")
    node("Unsqueeze", [node("Gather", [g.init("sin_table", sin), pos], "sin3"), "ax_2"], "sin")
    embed = weight("model.embed_tokens.weight", (dims["vocab"], d))
    h = node("Gather", [embed, "input_ids"], "h0")

    for i in range(dims["layers"]):
        p, a = f"model.layers.{i}", f"l{i}"
        x = rms_norm(h, f"{p}.input_layernorm.weight", f"{a}_ln1")
        q = linear(x, f"{p}.self_attn.q_proj", d, heads * hd, f"{a}_q")
        q = rotate(node("Reshape", [q, "q4"], f"{a}_q4"), f"{a}_qr")
        k = linear(x, f"{p}.self_attn.k_proj", d, kvh * hd, f"{a}_k")
        k = rotate(node("Reshape", [k, "kv4"], f"{a}_k4"), f"{a}_kr")
        v = node("Reshape", [linear(x, f"{p}.self_attn.v_proj", d, kvh * hd, f"{a}_v"), "kv4"], f"{a}_v4")
        ctx = g.attention(q, k, v, attn_bias, "inv_sqrt_dh", a)
        h = node("Add", [h, linear(ctx, f"{p}.self_attn.o_proj", heads * hd, d, f"{a}_attn")], f"{a}_h_attn")
        x = rms_norm(h, f"{p}.post_attention_layernorm.weight", f"{a}_ln2")
        gate = linear(x, f"{p}.mlp.gate_proj", d, inner, f"{a}_gate")
        act = node("Mul", [node("Mul", [gate, node("Sigmoid", [gate], f"{a}_sig")], f"{a}_silu"),
                           linear(x, f"{p}.mlp.up_proj", d, inner, f"{a}_up")], f"{a}_act")  # fmt: skip
        h = node("Add", [h, linear(act, f"{p}.mlp.down_proj", inner, d, f"{a}_mlp")], f"{a}_h")

    x = rms_norm(h, "model.norm.weight", "h_final")
    if dims["tied"]:
        head = node("Transpose", [embed], "lm_head_t", perm=[1, 0])  # tied: folded once at session build
    else:
        head_t = np.ascontiguousarray(weights.get("lm_head.weight", np.empty(0)).T)
        head = weight("lm_head.weight", (dims["vocab"], d), value=head_t)
    node("MatMul", [x, head], "logits")
    return g.model("llama_lm", dims["vocab"])


def export_llama(checkpoint: Path, out_file: Path) -> dict:
    """Convert a LLaMA-style checkpoint directory to `out_file`; returns the config's dims."""
    config = read_config(checkpoint)
    save_model(build_llama_model(config, read_weights(checkpoint)), out_file)
    return llama_dims(config)
