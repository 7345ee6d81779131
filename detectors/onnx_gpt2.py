"""Build a GPT-2 causal LM ONNX graph from a Hugging Face checkpoint directory (no torch).

Reads `config.json` and `model.safetensors` (or a sharded `model.safetensors.index.json`) with HF
GPT-2 tensor names and Conv1D weight layout (`y = x @ W + b`, W is [in, out]). The graph has token +
position embeddings, pre-LN blocks with causal self-attention and a GELU MLP, a final LayerNorm and
the LM head tied to the token embeddings; its interface is described in detectors/onnx_lm.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detectors.onnx_lm import CheckpointError, GraphKit, read_config, read_weights, save_model

GELU_APPROXIMATION = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}


def gpt2_dims(config: dict) -> dict:
    """The GPT-2 hyper-parameters the graph needs, with HF defaults, checked for consistency."""
    try:
        dims = {
            "vocab": int(config["vocab_size"]),
            "d": int(config.get("n_embd", config.get("hidden_size", 768))),
            "layers": int(config.get("n_layer", config.get("num_hidden_layers", 12))),
            "heads": int(config.get("n_head", config.get("num_attention_heads", 12))),
            "positions": int(config.get("n_positions", config.get("max_position_embeddings", 1024))),
            "eps": float(config.get("layer_norm_epsilon", 1e-5)),
            "inner": int(config.get("n_inner") or 4 * int(config.get("n_embd", 768))),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"GPT-2 config lacks or mangles {exc}") from exc
    act = config.get("activation_function", "gelu_new")
    if act not in GELU_APPROXIMATION:
        raise CheckpointError(f"unsupported activation_function {act!r} (known: {', '.join(GELU_APPROXIMATION)})")
    dims["gelu"] = GELU_APPROXIMATION[act]
    if dims["d"] % dims["heads"]:
        raise CheckpointError(f"n_embd {dims['d']} is not a multiple of n_head {dims['heads']}")
    return dims


def build_gpt2_model(config: dict, weights: dict[str, np.ndarray]):
    """The ONNX ModelProto of a GPT-2 LM head model with these weights."""
    dims = gpt2_dims(config)
    d, heads, inner, eps = dims["d"], dims["heads"], dims["inner"], dims["eps"]
    head_dim = d // heads
    g = GraphKit(weights, "GPT-2")
    node, weight = g.node, g.weight

    def layer_norm(x: str, prefix: str, out: str) -> str:
        scale, bias = weight(f"{prefix}.weight", (d,)), weight(f"{prefix}.bias", (d,))
        return node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=eps)

    def linear(x: str, prefix: str, n_in: int, n_out: int, out: str) -> str:
        w, b = weight(f"{prefix}.weight", (n_in, n_out)), weight(f"{prefix}.bias", (n_out,))
        return node("Add", [node("MatMul", [x, w], out + "_mm"), b], out)

    g.const("bthd", [0, 0, heads, head_dim])  # Reshape: 0 copies the input dimension
    g.const("btd", [0, 0, d])
    g.const("split3", [d, d, d])
    g.init("inv_sqrt_dh", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
    pos, attn_bias = g.positions_and_bias()
    wte = weight("wte.weight", (dims["vocab"], d))
    wpe = weight("wpe.weight", (dims["positions"], d))
    h = node("Add", [node("Gather", [wte, "input_ids"], "tok_emb"), node("Gather", [wpe, pos], "pos_emb")], "h0")

    for i in range(dims["layers"]):
        p = f"h.{i}"
        x = layer_norm(h, f"{p}.ln_1", f"{p}_ln1")
        qkv = linear(x, f"{p}.attn.c_attn", d, 3 * d, f"{p}_qkv")
        q, k, v = (
            node("Transpose", [node("Reshape", [t, "bthd"], f"{t}4")], f"{t}h", perm=[0, 2, 1, 3])
            for t in g.split(qkv, "split3", [f"{p}_q", f"{p}_k", f"{p}_v"])
        )  # [B, H, T, Dh]
        kt = node("Transpose", [k], f"{p}_kt", perm=[0, 1, 3, 2])
        scores = node("Mul", [node("MatMul", [q, kt], f"{p}_qk"), "inv_sqrt_dh"], f"{p}_scaled")
        probs = node("Softmax", [node("Add", [scores, attn_bias], f"{p}_masked")], f"{p}_probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"{p}_ctx4")], f"{p}_ctxt", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "btd"], f"{p}_ctx")
        h = node("Add", [h, linear(ctx, f"{p}.attn.c_proj", d, d, f"{p}_attn_out")], f"{p}_h_attn")
        x = layer_norm(h, f"{p}.ln_2", f"{p}_ln2")
        act = node("Gelu", [linear(x, f"{p}.mlp.c_fc", d, inner, f"{p}_fc")], f"{p}_gelu", approximate=dims["gelu"])
        h = node("Add", [h, linear(act, f"{p}.mlp.c_proj", inner, d, f"{p}_mlp_out")], f"{p}_h")

    x = layer_norm(h, "ln_f", "h_final")
    # Tied LM head: logits = h @ wte^T (transposed once when the session is built, not stored twice).
    node("MatMul", [x, node("Transpose", [wte], "wte_t", perm=[1, 0])], "logits")
    return g.model("gpt2_lm", dims["vocab"])


def export_gpt2(checkpoint: Path, out_file: Path) -> dict:
    """Convert a GPT-2 checkpoint directory to `out_file`; returns the config's dims."""
    config = read_config(checkpoint)
    model = build_gpt2_model(config, read_weights(checkpoint))
    save_model(model, out_file)
    return gpt2_dims(config)
