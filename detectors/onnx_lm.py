"""Shared parts of the causal LM ONNX builders (onnx_gpt2, onnx_llama): checkpoint reading and a graph kit.

Every built graph has the same interface:

    input_ids int64 [B, T], attention_mask int64 [B, T] -> logits float32 [B, T, vocab]

Positions count only attended tokens (cumsum of the mask - 1), as Hugging Face does, so left or
right padding both work. Needs the `train` extra (onnx, safetensors); scoring needs neither.
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
            weights[name.removeprefix("transformer.")] = _to_float32(value)
    return weights


def _to_float32(value: np.ndarray) -> np.ndarray:
    if value.dtype.kind == "V" and value.dtype.itemsize == 2:  # bfloat16 as raw bytes
        return (value.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(value, dtype=np.float32)


class GraphKit:
    """Collects nodes and initializers; names every value; checks weights against expected shapes."""

    def __init__(self, weights: dict[str, np.ndarray], family: str):
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.weights, self.family = weights, family
        self.nodes, self.inits = [], []
        for name, value in {"one": 1, "zero": 0, "ax0": [0], "ax1": [1], "ax12": [1, 2], "axm1": [-1]}.items():
            self.const(name, value)

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(self._numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def const(self, name: str, values, dtype=np.int64) -> str:
        return self.init(name, np.array(values, dtype=dtype))

    def node(self, op: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(self._helper.make_node(op, inputs, [out], name=f"{op}_{len(self.nodes)}", **attrs))
        return out

    def split(self, x: str, sizes: str, outs: list[str], axis: int = -1) -> list[str]:
        self.nodes.append(self._helper.make_node("Split", [x, sizes], outs, name=f"Split_{len(self.nodes)}", axis=axis))
        return outs

    def has(self, name: str) -> bool:
        return name in self.weights

    def weight(self, name: str, shape: tuple, value: np.ndarray | None = None) -> str:
        """An initializer from the checkpoint tensor `name` (or `value` derived from it), shape-checked."""
        if name not in self.weights:
            raise CheckpointError(f"checkpoint has no tensor {name!r} (is it a {self.family} checkpoint?)")
        if tuple(self.weights[name].shape) != shape:
            raise CheckpointError(f"tensor {name!r} has shape {tuple(self.weights[name].shape)}, expected {shape}")
        return self.init(name, self.weights[name] if value is None else value)

    def attention_shapes(self, heads: int, kv_heads: int, head_dim: int) -> None:
        """Shape constants of grouped-query attention (`q4`, `kv4`, `q5`, `btd`, `half`) used by `attention`."""
        self.const("half", [head_dim // 2, head_dim // 2])
        self.const("q5", [0, 0, kv_heads, heads // kv_heads, head_dim])  # query heads grouped by the kv head they share
        self.const("kv4", [0, 0, kv_heads, head_dim])
        self.const("btd", [0, 0, heads * head_dim])
        self.const("q4", [0, 0, heads, head_dim])
        self.const("ax_2", [2])

    def attention(self, q: str, k: str, v: str, bias: str, scale: str, a: str) -> str:
        """Grouped-query attention: q [B, T, heads, hd], k and v [B, T, kv_heads, hd] -> [B, T, heads * hd]."""
        node = self.node
        q5 = node("Transpose", [node("Reshape", [q, "q5"], f"{a}_q5")], f"{a}_qh", perm=[0, 2, 3, 1, 4])  # B,G,R,T,hd
        kt = node("Unsqueeze", [node("Transpose", [k], f"{a}_kt4", perm=[0, 2, 3, 1]), "ax_2"], f"{a}_kt")  # B,G,1,hd,T
        vh = node("Unsqueeze", [node("Transpose", [v], f"{a}_vh4", perm=[0, 2, 1, 3]), "ax_2"], f"{a}_vh")  # B,G,1,T,hd
        scores = node("Mul", [node("MatMul", [q5, kt], f"{a}_qk"), scale], f"{a}_scaled")
        probs = node("Softmax", [node("Add", [scores, bias], f"{a}_masked")], f"{a}_probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, vh], f"{a}_ctx5")], f"{a}_ctxt", perm=[0, 3, 1, 2, 4])
        return node("Reshape", [ctx, "btd"], f"{a}_ctx")

    def positions_and_bias(self, bias_rank: int = 4) -> tuple[str, str]:
        """`position_ids` [B, T] and the additive causal + padding attention bias [B, 1, (1,) T, T]."""
        from onnx import TensorProto

        n = self.node
        self.init("mask_value", np.array(MASK_VALUE, dtype=np.float32))
        self.init("fzero", np.array(0.0, dtype=np.float32))
        n("Max", [n("Sub", [n("CumSum", ["attention_mask", "one"], "mask_cumsum"), "one"], "pos_raw"), "zero"], "pos")
        n("Gather", [n("Shape", ["input_ids"], "ids_shape"), "one"], "t_scalar", axis=0)
        n("Range", ["zero", "t_scalar", "one"], "arange")
        # 0 where key j <= query i and j is attended.
        key_idx, query_idx = n("Unsqueeze", ["arange", "ax0"], "key_idx"), n("Unsqueeze", ["arange", "ax1"], "q_idx")
        n("LessOrEqual", [key_idx, query_idx], "causal")  # [T, T]
        key_ok = n("Unsqueeze", [n("Cast", ["attention_mask"], "key_ok_2d", to=TensorProto.BOOL), "ax12"], "key_ok")
        if bias_rank == 5:
            key_ok = n("Unsqueeze", [key_ok, "ax1"], "key_ok5")
        n("Where", [n("And", ["causal", key_ok], "allowed"), "fzero", "mask_value"], "attn_bias")
        return "pos", "attn_bias"

    def model(self, name: str, vocab: int):
        from onnx import TensorProto

        h = self._helper
        used = {name for n in self.nodes for name in n.input}
        graph = h.make_graph(
            self.nodes,
            name,
            [
                h.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
                h.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
            ],
            [h.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "tokens", vocab])],
            [t for t in self.inits if t.name in used],
        )
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="synthweb")
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
