"""Build a GPT-2 causal LM ONNX graph from a Hugging Face checkpoint directory (no torch).

Reads `config.json` and `model.safetensors` (or a sharded `model.safetensors.index.json`) with HF
GPT-2 tensor names and Conv1D weight layout (`y = x @ W + b`, W is [in, out]), and writes a graph

    input_ids int64 [B, T], attention_mask int64 [B, T] -> logits float32 [B, T, vocab]

with token + position embeddings, pre-LN blocks with causal self-attention and a GELU MLP, a
final LayerNorm and the LM head tied to the token embeddings. Positions count only attended
tokens (cumsum of the mask - 1), as Hugging Face does, so left or right padding both work.
Needs the `train` extra (onnx, safetensors).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detectors.runtime import DetectorError

OPSET = 20  # Gelu with the tanh approximation
# Masked attention logits; finite so a fully masked row (a left pad) gives a uniform row, not NaN.
MASK_VALUE = -1e9
# Above this, tensors go to an external data file (protobuf caps a file at 2 GiB).
EXTERNAL_DATA_BYTES = 1_500_000_000
GELU_APPROXIMATION = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}


class CheckpointError(DetectorError):
    """A checkpoint directory that cannot be read or converted."""


def read_config(checkpoint: Path) -> dict:
    path = Path(checkpoint) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{checkpoint}: no config.json (not a Hugging Face checkpoint directory)") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable config: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config is not a JSON object")
    return config


def read_weights(checkpoint: Path) -> dict[str, np.ndarray]:
    """All tensors as float32 numpy arrays, with a leading `transformer.` stripped from the names."""
    from safetensors.numpy import load_file

    checkpoint = Path(checkpoint)
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        files = [checkpoint / s for s in shards]
    else:
        files = [checkpoint / "model.safetensors"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        hint = ""
        if (checkpoint / "pytorch_model.bin").exists():
            hint = " (pytorch_model.bin is not read: save the model with safe_serialization=True)"
        raise CheckpointError(f"{checkpoint}: missing {', '.join(missing)}{hint}")
    weights: dict[str, np.ndarray] = {}
    for f in files:
        try:
            tensors = load_file(str(f))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{f}: unreadable safetensors file: {exc}") from exc
        for name, value in tensors.items():
            name = name.removeprefix("transformer.")
            weights[name] = _to_float32(value)
    return weights


def _to_float32(value: np.ndarray) -> np.ndarray:
    if value.dtype.kind == "V" and value.dtype.itemsize == 2:  # bfloat16 as raw bytes
        return (value.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(value, dtype=np.float32)


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


def _expect(weights: dict, name: str, shape: tuple) -> np.ndarray:
    if name not in weights:
        raise CheckpointError(f"checkpoint has no tensor {name!r} (is it a GPT-2 checkpoint?)")
    if tuple(weights[name].shape) != shape:
        raise CheckpointError(f"tensor {name!r} has shape {tuple(weights[name].shape)}, expected {shape}")
    return weights[name]


def build_gpt2_model(config: dict, weights: dict[str, np.ndarray]):
    """The ONNX ModelProto of a GPT-2 LM head model with these weights."""
    from onnx import TensorProto, helper, numpy_helper

    dims = gpt2_dims(config)
    d, heads, inner, eps = dims["d"], dims["heads"], dims["inner"], dims["eps"]
    head_dim = d // heads
    nodes, inits = [], []

    def init(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{len(nodes)}", **attrs))
        return out

    def weight(name: str, shape: tuple) -> str:
        return init(name, _expect(weights, name, shape))

    def layer_norm(x: str, prefix: str, out: str) -> str:
        scale, bias = weight(f"{prefix}.weight", (d,)), weight(f"{prefix}.bias", (d,))
        return node("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=eps)

    def linear(x: str, prefix: str, n_in: int, n_out: int, out: str) -> str:
        w, b = weight(f"{prefix}.weight", (n_in, n_out)), weight(f"{prefix}.bias", (n_out,))
        return node("Add", [node("MatMul", [x, w], out + "_mm"), b], out)

    i64 = lambda name, values: init(name, np.array(values, dtype=np.int64))  # noqa: E731
    i64("one", 1)
    i64("zero", 0)
    i64("ax0", [0])
    i64("ax1", [1])
    i64("ax12", [1, 2])
    i64("bthd", [0, 0, heads, head_dim])  # Reshape: 0 copies the input dimension
    i64("btd", [0, 0, d])
    i64("split3", [d, d, d])
    init("mask_value", np.array(MASK_VALUE, dtype=np.float32))
    init("fzero", np.array(0.0, dtype=np.float32))
    init("inv_sqrt_dh", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))

    # Positions of attended tokens: cumsum(mask) - 1, at least 0.
    node("CumSum", ["attention_mask", "one"], "mask_cumsum")
    node("Max", [node("Sub", ["mask_cumsum", "one"], "pos_raw"), "zero"], "position_ids")
    wte = weight("wte.weight", (dims["vocab"], d))
    wpe = weight("wpe.weight", (dims["positions"], d))
    node("Gather", [wte, "input_ids"], "tok_emb", axis=0)
    node("Gather", [wpe, "position_ids"], "pos_emb", axis=0)
    h = node("Add", ["tok_emb", "pos_emb"], "h0")

    # Additive attention bias [B, 1, T, T]: 0 where key j <= query i and j is attended.
    node("Shape", ["input_ids"], "ids_shape")
    node("Gather", ["ids_shape", "one"], "t_scalar", axis=0)
    node("Range", ["zero", "t_scalar", "one"], "arange")
    node("Unsqueeze", ["arange", "ax0"], "key_idx")  # [1, T]
    node("Unsqueeze", ["arange", "ax1"], "query_idx")  # [T, 1]
    node("LessOrEqual", ["key_idx", "query_idx"], "causal")  # [T, T]
    node("Cast", ["attention_mask"], "key_ok_2d", to=TensorProto.BOOL)
    node("Unsqueeze", ["key_ok_2d", "ax12"], "key_ok")  # [B, 1, 1, T]
    node("And", ["causal", "key_ok"], "allowed")
    node("Where", ["allowed", "fzero", "mask_value"], "attn_bias")

    for i in range(dims["layers"]):
        p = f"h.{i}"
        x = layer_norm(h, f"{p}.ln_1", f"{p}_ln1")
        qkv = linear(x, f"{p}.attn.c_attn", d, 3 * d, f"{p}_qkv")
        nodes.append(helper.make_node("Split", [qkv, "split3"], [f"{p}_q", f"{p}_k", f"{p}_v"], axis=-1))
        q, k, v = (
            node("Transpose", [node("Reshape", [f"{p}_{n}", "bthd"], f"{p}_{n}4")], f"{p}_{n}h", perm=[0, 2, 1, 3])
            for n in "qkv"
        )  # [B, H, T, Dh]
        kt = node("Transpose", [k], f"{p}_kt", perm=[0, 1, 3, 2])
        scores = node("Mul", [node("MatMul", [q, kt], f"{p}_qk"), "inv_sqrt_dh"], f"{p}_scaled")
        probs = node("Softmax", [node("Add", [scores, "attn_bias"], f"{p}_masked")], f"{p}_probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"{p}_ctx4")], f"{p}_ctxt", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "btd"], f"{p}_ctx")
        h = node("Add", [h, linear(ctx, f"{p}.attn.c_proj", d, d, f"{p}_attn_out")], f"{p}_h_attn")
        x = layer_norm(h, f"{p}.ln_2", f"{p}_ln2")
        act = node("Gelu", [linear(x, f"{p}.mlp.c_fc", d, inner, f"{p}_fc")], f"{p}_gelu", approximate=dims["gelu"])
        h = node("Add", [h, linear(act, f"{p}.mlp.c_proj", inner, d, f"{p}_mlp_out")], f"{p}_h")

    x = layer_norm(h, "ln_f", "h_final")
    # Tied LM head: logits = h @ wte^T (transposed once when the session is built, not stored twice).
    node("MatMul", [x, node("Transpose", [wte], "wte_t", perm=[1, 0])], "logits")

    graph = helper.make_graph(
        nodes,
        "gpt2_lm",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "tokens", dims["vocab"]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="synthweb")
    model.ir_version = 9  # readable by onnxruntime >= 1.16
    return model


def save_model(model, path: Path) -> Path:
    """Write the model; large ones keep their tensors in `<name>.data` beside it."""
    import onnx

    path = Path(path)
    size = sum(len(t.raw_data) for t in model.graph.initializer)
    if size > EXTERNAL_DATA_BYTES:
        onnx.save_model(model, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save_model(model, str(path))
    return path


def export_gpt2(checkpoint: Path, out_file: Path) -> dict:
    """Convert a GPT-2 checkpoint directory to `out_file`; returns the config's dims."""
    config = read_config(checkpoint)
    model = build_gpt2_model(config, read_weights(checkpoint))
    save_model(model, out_file)
    return gpt2_dims(config)
