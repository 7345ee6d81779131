"""Tiny randomly initialised GPT-2 checkpoints written inside tests, and a numpy reference forward."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SENTENCES = [
    "The committee met on Tuesday to discuss the new budget for the city library.",
    "In today's fast-paced world, it is important to understand the many benefits of technology.",
    "My grandfather walked the fence line every evening, touching the posts like he was counting them.",
    "Researchers found that the river had risen by almost two metres in a single week of rain.",
    "Overall, sustainable agriculture is an essential part of building a better future for everyone.",
    "She laughed, dropped the keys into her coat pocket and ran for the last bus home.",
]


def train_tokenizer(vocab_size: int = 300):
    """A byte-level BPE tokenizer (as GPT-2's) trained on a few sentences: covers any text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 3, trainer=trainer)
    return tok


def random_gpt2_weights(config: dict, seed: int, prefix: str = "") -> dict[str, np.ndarray]:
    """HF GPT-2 tensor names and Conv1D layout, random values of a plausible scale."""
    rng = np.random.default_rng(seed)
    d, v, p, n = config["n_embd"], config["vocab_size"], config["n_positions"], config["n_layer"]

    def r(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {"wte.weight": r(v, d, scale=0.5), "wpe.weight": r(p, d, scale=0.1)}
    for i in range(n):
        b = f"h.{i}."
        w |= {
            b + "ln_1.weight": 1 + r(d, scale=0.1), b + "ln_1.bias": r(d, scale=0.1),
            b + "attn.c_attn.weight": r(d, 3 * d), b + "attn.c_attn.bias": r(3 * d, scale=0.05),
            b + "attn.c_proj.weight": r(d, d), b + "attn.c_proj.bias": r(d, scale=0.05),
            b + "ln_2.weight": 1 + r(d, scale=0.1), b + "ln_2.bias": r(d, scale=0.1),
            b + "mlp.c_fc.weight": r(d, 4 * d), b + "mlp.c_fc.bias": r(4 * d, scale=0.05),
            b + "mlp.c_proj.weight": r(4 * d, d), b + "mlp.c_proj.bias": r(d, scale=0.05),
        }  # fmt: skip
    w |= {"ln_f.weight": 1 + r(d, scale=0.1), "ln_f.bias": r(d, scale=0.1)}
    return {prefix + k: val for k, val in w.items()}


def write_gpt2_checkpoint(
    directory: Path, tokenizer, seed: int = 0, n_embd: int = 32, n_layer: int = 2, n_head: int = 4, prefix: str = ""
) -> Path:
    """config.json + model.safetensors (+ tokenizer.json when `tokenizer` is given), as save_pretrained writes."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": tokenizer.get_vocab_size() if tokenizer else 300,
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": n_head,
        "n_positions": 64,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    save_file(random_gpt2_weights(config, seed, prefix), str(directory / "model.safetensors"))
    if tokenizer is not None:
        tokenizer.save(str(directory / "tokenizer.json"))
    return directory


def _layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def numpy_gpt2_logits(config: dict, w: dict, ids: np.ndarray) -> np.ndarray:
    """Reference GPT-2 forward for ONE unpadded sequence `ids` [T] -> logits [T, V], in float64."""
    w = {k.removeprefix("transformer."): v.astype(np.float64) for k, v in w.items()}
    d, n_head = config["n_embd"], config["n_head"]
    dh = d // n_head
    t = len(ids)
    h = w["wte.weight"][ids] + w["wpe.weight"][np.arange(t)]
    causal = np.tril(np.ones((t, t), dtype=bool))
    for i in range(config["n_layer"]):
        b = f"h.{i}."
        x = _layer_norm(h, w[b + "ln_1.weight"], w[b + "ln_1.bias"])
        qkv = x @ w[b + "attn.c_attn.weight"] + w[b + "attn.c_attn.bias"]
        q, k, v = (m.reshape(t, n_head, dh).transpose(1, 0, 2) for m in np.split(qkv, 3, axis=-1))
        att = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
        att = np.where(causal, att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(1, 0, 2).reshape(t, d)
        h = h + ctx @ w[b + "attn.c_proj.weight"] + w[b + "attn.c_proj.bias"]
        x = _layer_norm(h, w[b + "ln_2.weight"], w[b + "ln_2.bias"])
        h = h + _gelu_tanh(x @ w[b + "mlp.c_fc.weight"] + w[b + "mlp.c_fc.bias"]) @ w[b + "mlp.c_proj.weight"]
        h = h + w[b + "mlp.c_proj.bias"]
    return _layer_norm(h, w["ln_f.weight"], w["ln_f.bias"]) @ w["wte.weight"].T


def write_llama_checkpoint(
    directory: Path, tokenizer, seed: int = 0, tied: bool = False, qkv_bias: bool = False, kv_heads: int = 2
) -> Path:
    """A tiny LLaMA-style checkpoint (grouped-query attention; Qwen2-like q/k/v biases when asked)."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    d, heads, hd, inner, n_layer, v = 32, 4, 8, 64, 2, tokenizer.get_vocab_size()
    config = {
        "architectures": ["Qwen2ForCausalLM" if qkv_bias else "LlamaForCausalLM"],
        "model_type": "qwen2" if qkv_bias else "llama",
        "vocab_size": v, "hidden_size": d, "num_hidden_layers": n_layer, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "intermediate_size": inner, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 64, "tie_word_embeddings": tied, "hidden_act": "silu",
    }  # fmt: skip
    rng = np.random.default_rng(seed)

    def r(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {"model.embed_tokens.weight": r(v, d, scale=0.5), "model.norm.weight": 1 + r(d, scale=0.1)}
    for i in range(n_layer):
        b = f"model.layers.{i}."
        w |= {
            b + "input_layernorm.weight": 1 + r(d, scale=0.1),
            b + "post_attention_layernorm.weight": 1 + r(d, scale=0.1),
            b + "self_attn.q_proj.weight": r(heads * hd, d), b + "self_attn.k_proj.weight": r(kv_heads * hd, d),
            b + "self_attn.v_proj.weight": r(kv_heads * hd, d), b + "self_attn.o_proj.weight": r(d, heads * hd),
            b + "mlp.gate_proj.weight": r(inner, d), b + "mlp.up_proj.weight": r(inner, d),
            b + "mlp.down_proj.weight": r(d, inner),
        }  # fmt: skip
        if qkv_bias:
            for n, m in (("q", heads), ("k", kv_heads), ("v", kv_heads)):
                w[b + f"self_attn.{n}_proj.bias"] = r(m * hd, scale=0.1)
    if not tied:
        w["lm_head.weight"] = r(v, d, scale=0.5)
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    save_file(w, str(directory / "model.safetensors"))
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


def numpy_llama_logits(config: dict, w: dict, ids: np.ndarray) -> np.ndarray:
    """Reference LLaMA forward (HF modeling_llama, eager) for ONE unpadded sequence, in float64."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    d, heads, kvh = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    hd, t, eps = d // heads, len(ids), config["rms_norm_eps"]

    def rms(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    inv_freq = 1.0 / config["rope_theta"] ** (np.arange(0, hd, 2) / hd)
    ang = np.outer(np.arange(t), inv_freq)
    cos, sin = np.cos(np.r_["-1", ang, ang]), np.sin(np.r_["-1", ang, ang])  # [T, hd]

    def rope(x):  # [n, T, hd]
        rot = np.concatenate([-x[..., hd // 2 :], x[..., : hd // 2]], axis=-1)
        return x * cos + rot * sin

    h = w["model.embed_tokens.weight"][ids]
    causal = np.tril(np.ones((t, t), dtype=bool))
    for i in range(config["num_hidden_layers"]):
        b = f"model.layers.{i}."
        x = rms(h, w[b + "input_layernorm.weight"])
        q = rope(lin(x, b + "self_attn.q_proj").reshape(t, heads, hd).transpose(1, 0, 2))
        k = rope(lin(x, b + "self_attn.k_proj").reshape(t, kvh, hd).transpose(1, 0, 2))
        v = lin(x, b + "self_attn.v_proj").reshape(t, kvh, hd).transpose(1, 0, 2)
        k, v = np.repeat(k, heads // kvh, axis=0), np.repeat(v, heads // kvh, axis=0)  # HF repeat_kv
        att = np.where(causal, q @ k.transpose(0, 2, 1) / np.sqrt(hd), -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        h = h + lin((att @ v).transpose(1, 0, 2).reshape(t, heads * hd), b + "self_attn.o_proj")
        x = rms(h, w[b + "post_attention_layernorm.weight"])
        gate = lin(x, b + "mlp.gate_proj")
        h = h + lin(gate / (1 + np.exp(-gate)) * lin(x, b + "mlp.up_proj"), b + "mlp.down_proj")
    head = w["model.embed_tokens.weight"] if config["tie_word_embeddings"] else w["lm_head.weight"]
    return rms(h, w["model.norm.weight"]) @ head.T
