"""Read GGUF files (llama.cpp's format) into float32 numpy weights and a metadata dict.

The `gguf` package (llama.cpp's own reader) parses the file and dequantizes Q4_0/Q4_1/Q5_0/Q8_0/Q4_K/Q6_K
tensors. Shapes come back in numpy order, i.e. GGUF's `ne` reversed: a linear layer is [out, in], as
PyTorch's nn.Linear stores it. `llama_checkpoint` turns a LLaMA-architecture file into the Hugging Face
config and tensor names that detectors/onnx_llama.py builds from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from detectors.runtime import DetectorError


class GGUFError(DetectorError):
    """A GGUF file that cannot be read or is not the architecture asked for."""


class _LazyFields(Mapping):
    """Metadata values decoded on first access (a 262k-token vocabulary takes seconds to decode)."""

    def __init__(self, fields):
        self._fields = {k: f for k, f in fields.items() if not k.startswith("GGUF.")}
        self._values: dict = {}

    def __getitem__(self, key):
        if key not in self._values:
            self._values[key] = self._fields[key].contents()
        return self._values[key]

    def __iter__(self):
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


class GGUFFile:
    """Metadata (`meta`, plain Python values) and lazily dequantized tensors of one GGUF file."""

    def __init__(self, path: str | Path):
        try:
            import gguf
        except ImportError as exc:
            raise GGUFError("reading GGUF files needs the gguf package: pip install gguf==0.19.0") from exc
        self.path = Path(path)
        try:
            self._reader = gguf.GGUFReader(str(self.path))
        except (OSError, ValueError) as exc:
            raise GGUFError(f"{self.path}: not a readable GGUF file: {exc}") from exc
        self._dequantize = gguf.quants.dequantize
        self.meta = _LazyFields(self._reader.fields)
        self._tensors = {t.name: t for t in self._reader.tensors}

    @property
    def architecture(self) -> str:
        return str(self.meta.get("general.architecture", ""))

    def names(self) -> list[str]:
        return list(self._tensors)

    def tensor(self, name: str) -> np.ndarray:
        """Tensor `name` as contiguous float32 in numpy shape order."""
        if name not in self._tensors:
            raise GGUFError(f"{self.path}: no tensor {name!r}")
        t = self._tensors[name]
        shape = tuple(int(n) for n in reversed(t.shape))
        values = self._dequantize(t.data, t.tensor_type)
        return np.ascontiguousarray(values, dtype=np.float32).reshape(shape)

    def field(self, key: str, default=None):
        return self.meta.get(key, default)


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's convert-time permutation of Q/K rows (interleaved rotary pairs -> rotate-half)."""
    rows = w.shape[0]
    return np.ascontiguousarray(w.reshape(heads, rows // heads // 2, 2, -1).swapaxes(1, 2).reshape(w.shape))


_LLAMA_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def llama_checkpoint(gg: GGUFFile) -> tuple[dict, dict[str, np.ndarray]]:
    """(Hugging Face LlamaConfig dict, weights under HF names) from a LLaMA-architecture GGUF file."""
    if gg.architecture != "llama":
        raise GGUFError(f"{gg.path}: architecture {gg.architecture!r}, expected 'llama'")
    a = "llama."
    try:
        heads = int(gg.meta[a + "attention.head_count"])
        config = {
            "vocab_size": int(gg.meta.get(a + "vocab_size") or len(gg.meta["tokenizer.ggml.tokens"])),
            "hidden_size": int(gg.meta[a + "embedding_length"]),
            "num_hidden_layers": int(gg.meta[a + "block_count"]),
            "num_attention_heads": heads,
            "num_key_value_heads": int(gg.meta.get(a + "attention.head_count_kv", heads)),
            "intermediate_size": int(gg.meta[a + "feed_forward_length"]),
            "rms_norm_eps": float(gg.meta[a + "attention.layer_norm_rms_epsilon"]),
            "rope_theta": float(gg.meta.get(a + "rope.freq_base", 10000.0)),
            "max_position_embeddings": int(gg.meta[a + "context_length"]),
            "tie_word_embeddings": "output.weight" not in gg.names(),
            "hidden_act": "silu",
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise GGUFError(f"{gg.path}: LLaMA metadata lacks or mangles {exc}") from exc
    weights = {
        "model.embed_tokens.weight": gg.tensor("token_embd.weight"),
        "model.norm.weight": gg.tensor("output_norm.weight"),
    }
    if not config["tie_word_embeddings"]:
        weights["lm_head.weight"] = gg.tensor("output.weight")
    for i in range(config["num_hidden_layers"]):
        for short, hf in _LLAMA_NAMES.items():
            w = gg.tensor(f"blk.{i}.{short}.weight")
            if short == "attn_q":
                w = _unpermute(w, heads)
            elif short == "attn_k":
                w = _unpermute(w, config["num_key_value_heads"])
            weights[f"model.layers.{i}.{hf}.weight"] = w
    return config, weights
