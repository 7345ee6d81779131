"""GGUF files to ONNX causal LMs: tensors, llama.cpp's Q/K permutation, tokenizers from GGUF metadata."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from tiny_lm import SENTENCES, numpy_llama_logits, train_tokenizer, write_llama_checkpoint

from detectors.gguf_read import GGUFError, GGUFFile, llama_checkpoint
from detectors.gguf_tokenizer import gpt2_tokenizer_json
from detectors.onnx_llama import build_llama_model
from detectors.onnx_lm import read_config, read_weights

gguf = pytest.importorskip("gguf")

GGUF_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}  # fmt: skip


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf.py does to LLaMA Q/K weights (LlamaModel.permute)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(path, config: dict, weights: dict, tokenizer, quantize_embedding: bool = False):
    """A LLaMA GGUF file as llama.cpp's converter writes one (permuted Q/K, GGUF names, tokenizer metadata)."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_rope_freq_base(config["rope_theta"])
    w.add_vocab_size(config["vocab_size"])
    model = json.loads(tokenizer.to_str())["model"]
    vocab = sorted(model["vocab"], key=model["vocab"].get)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(vocab)
    w.add_token_types([3 if t == "<|endoftext|>" else 1 for t in vocab])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model["merges"]])
    emb = weights["model.embed_tokens.weight"]
    if quantize_embedding:
        q = gguf.quants.quantize(emb, gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("token_embd.weight", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        w.add_tensor("token_embd.weight", emb)
    w.add_tensor("output_norm.weight", weights["model.norm.weight"])
    if "lm_head.weight" in weights:
        w.add_tensor("output.weight", weights["lm_head.weight"])
    for i in range(config["num_hidden_layers"]):
        for hf, short in GGUF_NAMES.items():
            t = weights[f"model.layers.{i}.{hf}.weight"]
            if short == "attn_q":
                t = llama_cpp_permute(t, config["num_attention_heads"])
            elif short == "attn_k":
                t = llama_cpp_permute(t, config["num_key_value_heads"])
            w.add_tensor(f"blk.{i}.{short}.weight", np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("gguf")
    tok = train_tokenizer()
    ckpt = write_llama_checkpoint(base / "ckpt", tok, seed=5, tied=False, kv_heads=2)
    config, weights = read_config(ckpt), read_weights(ckpt)
    return {
        "tok": tok,
        "config": config,
        "weights": weights,
        "gguf": write_llama_gguf(base / "m.gguf", config, weights, tok),
    }


def test_the_permutation_is_undone_so_weights_come_back_under_hf_names(tiny):
    config, weights = llama_checkpoint(GGUFFile(tiny["gguf"]))
    for key in ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "hidden_size", "vocab_size"):
        assert config[key] == tiny["config"][key]
    assert config["tie_word_embeddings"] is False
    assert set(weights) == set(tiny["weights"])
    for name, value in tiny["weights"].items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)


def test_graph_from_gguf_matches_the_numpy_llama_forward(tiny, tmp_path):
    config, weights = llama_checkpoint(GGUFFile(tiny["gguf"]))
    session = ort.InferenceSession(
        build_llama_model(config, weights).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    ids = np.array([tiny["tok"].encode(SENTENCES[0]).ids[:12]], dtype=np.int64)
    got = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
    want = numpy_llama_logits(tiny["config"], tiny["weights"], ids[0])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_quantized_tensors_are_dequantized(tiny, tmp_path):
    path = write_llama_gguf(tmp_path / "q8.gguf", tiny["config"], tiny["weights"], tiny["tok"], quantize_embedding=True)
    got = GGUFFile(path).tensor("token_embd.weight")
    want = tiny["weights"]["model.embed_tokens.weight"]
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < np.abs(want).max() / 100  # Q8_0: 8 bits per value, one scale per 32


def test_gpt2_tokenizer_from_gguf_metadata_equals_the_original(tiny):
    from tokenizers import Tokenizer

    meta = GGUFFile(tiny["gguf"]).meta
    rebuilt = Tokenizer.from_str(gpt2_tokenizer_json(meta, prefix="<|endoftext|>"))
    for text in SENTENCES:
        ids = rebuilt.encode(text).ids
        assert ids[0] == tiny["tok"].token_to_id("<|endoftext|>")
        # digits split one by one (the 'smollm' pre-tokenizer) is the only intended difference
        assert ids[1:] == tiny["tok"].encode(text).ids
        assert rebuilt.decode(ids, skip_special_tokens=True) == text
    assert rebuilt.encode("year 2024").tokens[-4:] == ["2", "0", "2", "4"]


def test_wrong_or_broken_files_are_named(tiny, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(GGUFError, match="bad.gguf"):
        GGUFFile(bad)
    with pytest.raises(GGUFError, match="no tensor 'nope'"):
        GGUFFile(tiny["gguf"]).tensor("nope")


def test_fp16_variant_of_a_llama_graph_keeps_its_logits(tiny):
    from detectors.lm_build import to_fp16

    config, weights = llama_checkpoint(GGUFFile(tiny["gguf"]))
    model = build_llama_model(config, weights)
    ids = np.array([tiny["tok"].encode(SENTENCES[1]).ids[:12]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    runs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        for m in (model, to_fp16(model))
    ]
    assert runs[1].dtype == np.float32  # float32 in and out: the detectors feed it as they feed fp32
    np.testing.assert_allclose(runs[1], runs[0], atol=2e-2 * np.abs(runs[0]).max())
