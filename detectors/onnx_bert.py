"""A BERT encoder as an ONNX graph built from safetensors weights with numpy and onnx (no torch).

`build_bert_onnx(weights, config)` writes the graph; `bert_reference(weights, config, ...)` is the
same forward pass in plain numpy, used by the tests to check the graph. Both give, per text,
the mean-pooled hidden states of every layer (`layer_means`, [N, layers, hidden]) and the
sentence embedding (`embedding`: the last layer's mean pool, L2-normalised, as
sentence-transformers computes it). Weight names follow Hugging Face's BertModel.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

OPSET = 17  # LayerNormalization is an ONNX op from 17 on
MASK_BIAS = -10000.0  # additive mask for padded keys; finite so an fp16 graph does not overflow
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "BF16": None}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a .safetensors file as numpy arrays (header: u64 length + JSON; then raw little-endian data)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(raw[base + start : base + end], dtype=dtype).reshape(info["shape"]).copy()
    return tensors


def random_bert_weights(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Randomly initialised BertModel weights for `config` (tests build tiny models with this)."""
    rng = np.random.default_rng(seed)
    h, inter = config["hidden_size"], config["intermediate_size"]

    def w(*shape):
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    weights = {
        "embeddings.word_embeddings.weight": w(config["vocab_size"], h),
        "embeddings.position_embeddings.weight": w(config["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": w(config.get("type_vocab_size", 2), h),
        "embeddings.LayerNorm.weight": 1 + w(h),
        "embeddings.LayerNorm.bias": w(h),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, (rows, cols) in {
            "attention.self.query": (h, h),
            "attention.self.key": (h, h),
            "attention.self.value": (h, h),
            "attention.output.dense": (h, h),
            "intermediate.dense": (inter, h),
            "output.dense": (h, inter),
        }.items():
            weights[p + name + ".weight"] = w(rows, cols)
            weights[p + name + ".bias"] = w(rows)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[p + ln + ".weight"] = 1 + w(h)
            weights[p + ln + ".bias"] = w(h)
    return weights


# --- numpy reference ------------------------------------------------------------


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    from math import erf, sqrt

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


def bert_reference(weights: dict, config: dict, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict:
    """BertModel forward pass in float64 numpy: {"layer_means": [N, L, H], "embedding": [N, H]}."""
    W = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype != np.int64}
    eps = config.get("layer_norm_eps", 1e-12)
    n_heads = config["num_attention_heads"]
    n, t = input_ids.shape
    h = config["hidden_size"]
    d = h // n_heads
    x = (
        W["embeddings.word_embeddings.weight"][input_ids]
        + W["embeddings.position_embeddings.weight"][:t]
        + W["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    mask = attention_mask.astype(np.float64)
    bias = (1.0 - mask)[:, None, None, :] * MASK_BIAS

    def dense(z, name):
        return z @ W[name + ".weight"].T + W[name + ".bias"]

    def heads(z):
        return z.reshape(n, t, n_heads, d).transpose(0, 2, 1, 3)

    means = []
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (heads(dense(x, p + f"attention.self.{m}")) for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, t, h)
        x = _layer_norm(dense(ctx, p + "attention.output.dense") + x, *_ln(W, p + "attention.output.LayerNorm"), eps)
        ff = dense(_gelu(dense(x, p + "intermediate.dense")), p + "output.dense")
        x = _layer_norm(ff + x, *_ln(W, p + "output.LayerNorm"), eps)
        means.append((x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9))
    last = means[-1]
    emb = last / np.maximum(np.linalg.norm(last, axis=1, keepdims=True), 1e-12)
    return {"layer_means": np.stack(means, axis=1), "embedding": emb}


def _ln(W, name):
    return W[name + ".weight"], W[name + ".bias"]


# --- ONNX graph -------------------------------------------------------------------


class _Graph:
    """Collects nodes and initializers with unique names."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, name: str, value) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        from onnx import helper

        self.count += 1
        out = f"{op_type.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def dense(self, x: str, weights: dict, name: str) -> str:
        w = self.const(name + ".weight_t", np.ascontiguousarray(weights[name + ".weight"].T.astype(np.float32)))
        b = self.const(name + ".bias", weights[name + ".bias"].astype(np.float32))
        return self.op("Add", self.op("MatMul", x, w), b)

    def layer_norm(self, x: str, weights: dict, name: str, eps: float) -> str:
        g = self.const(name + ".weight", weights[name + ".weight"].astype(np.float32))
        b = self.const(name + ".bias", weights[name + ".bias"].astype(np.float32))
        return self.op("LayerNormalization", x, g, b, axis=-1, epsilon=eps)


def build_bert_onnx(weights: dict, config: dict):
    """The encoder as an onnx.ModelProto: inputs input_ids, attention_mask (int64 [N, T]);
    outputs embedding [N, H] and layer_means [N, L, H] (float32)."""
    import onnx
    from onnx import TensorProto, helper

    h, n_heads = config["hidden_size"], config["num_attention_heads"]
    d, eps = h // n_heads, float(config.get("layer_norm_eps", 1e-12))
    g = _Graph()
    i64 = lambda name, v: g.const(name, np.array(v, dtype=np.int64))  # noqa: E731
    f32 = lambda name, v: g.const(name, np.array(v, dtype=np.float32))  # noqa: E731
    word = g.const("word_embeddings", weights["embeddings.word_embeddings.weight"].astype(np.float32))
    pos = g.const("position_embeddings", weights["embeddings.position_embeddings.weight"].astype(np.float32))
    type0 = f32("token_type_0", weights["embeddings.token_type_embeddings.weight"][0])
    zero, one = i64("zero_1d", [0]), i64("one_1d", [1])
    seq_len = g.op("Slice", g.op("Shape", "input_ids"), one, i64("two_1d", [2]))
    positions = g.op("Slice", pos, zero, seq_len, zero)  # first T rows
    x = g.op("Add", g.op("Add", g.op("Gather", word, "input_ids", axis=0), positions), type0)
    x = g.layer_norm(x, weights, "embeddings.LayerNorm", eps)

    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)  # [N, T]
    one_f = f32("one", 1.0)
    key_bias = g.op("Mul", g.op("Sub", one_f, mask), f32("mask_bias", MASK_BIAS))
    key_bias = g.op("Unsqueeze", key_bias, i64("axes_1_2", [1, 2]))  # [N, 1, 1, T]
    mask3 = g.op("Unsqueeze", mask, i64("axes_2", [2]))  # [N, T, 1]
    count = g.op("Max", g.op("ReduceSum", mask3, one, keepdims=1), f32("tiny", 1e-9))  # [N, 1, 1]
    split_heads = i64("split_heads", [0, 0, n_heads, d])
    merge_heads = i64("merge_heads", [0, 0, h])
    scale = f32("scale", 1.0 / np.sqrt(d))
    sqrt2, half = f32("sqrt2", np.sqrt(2.0)), f32("half", 0.5)

    means = []
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def heads(name, perm, x=x, p=p):
            return g.op("Transpose", g.op("Reshape", g.dense(x, weights, p + name), split_heads), perm=perm)

        q = heads("attention.self.query", [0, 2, 1, 3])  # [N, heads, T, d]
        k = heads("attention.self.key", [0, 2, 3, 1])  # [N, heads, d, T]
        v = heads("attention.self.value", [0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), key_bias)
        ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), merge_heads)
        attn = g.dense(ctx, weights, p + "attention.output.dense")
        x = g.layer_norm(g.op("Add", attn, x), weights, p + "attention.output.LayerNorm", eps)
        inner = g.dense(x, weights, p + "intermediate.dense")
        # Exact (erf) GELU as BERT uses; ONNX Runtime fuses this pattern into one Gelu kernel.
        gelu = g.op("Mul", g.op("Mul", inner, half), g.op("Add", g.op("Erf", g.op("Div", inner, sqrt2)), one_f))
        out = g.op("Add", g.dense(gelu, weights, p + "output.dense"), x)
        x = g.layer_norm(out, weights, p + "output.LayerNorm", eps)
        pooled = g.op("Div", g.op("ReduceSum", g.op("Mul", x, mask3), one, keepdims=1), count)  # [N, 1, H]
        means.append(pooled)
    layer_means = g.op("Concat", *means, axis=1)  # [N, L, H]
    last = g.op("Squeeze", means[-1], one)
    norm = g.op("Max", g.op("ReduceL2", last, axes=[1], keepdims=1), f32("norm_floor", 1e-12))
    g.nodes.append(helper.make_node("Identity", [layer_means], ["layer_means"]))
    g.nodes.append(helper.make_node("Div", [last, norm], ["embedding"]))

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
        for name in ("input_ids", "attention_mask")
    ]
    outputs = [
        helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", h]),
        helper.make_tensor_value_info("layer_means", TensorProto.FLOAT, ["batch", config["num_hidden_layers"], h]),
    ]
    graph = helper.make_graph(g.nodes, "bert_encoder", inputs, outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="synthweb")
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    onnx.checker.check_model(model)
    return model


def to_fp16(model):
    """fp16 weights and activations, fp32 inputs/outputs (for GPU providers; CPU kernels upcast)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # LayerNormalization and the pooling reductions stay fp32 for accuracy.
    return convert_float_to_float16(model, keep_io_types=True, op_block_list=["LayerNormalization", "ReduceL2"])


def to_int8(model_path: str | Path, out_path: str | Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (activations quantized per batch at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(model_path), str(out_path), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
