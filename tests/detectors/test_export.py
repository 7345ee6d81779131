"""`synthweb detectors export`: tiny random Hugging Face checkpoints written here -> detector directories."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from tiny_lm import (
    SENTENCES,
    numpy_gpt2_logits,
    numpy_llama_logits,
    train_tokenizer,
    write_gpt2_checkpoint,
    write_llama_checkpoint,
)

from detectors.export import export_checkpoint
from detectors.onnx_gpt2 import export_gpt2
from detectors.onnx_llama import export_llama
from detectors.onnx_lm import read_config, read_weights
from detectors.runtime import DetectorError, load_detector
from synthweb.cli import main


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer()


def _assert_graph_matches(tok, onnx_file, reference):
    """Logits of a right-padded and a left-padded row against the unpadded numpy reference forward."""
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    rows = [tok.encode(s).ids for s in SENTENCES[:3]]
    t = max(map(len, rows)) + 2
    ids, mask = np.zeros((3, t), np.int64), np.zeros((3, t), np.int64)
    ids[0, : len(rows[0])], mask[0, : len(rows[0])] = rows[0], 1  # right padding
    ids[1, t - len(rows[1]) :], mask[1, t - len(rows[1]) :] = rows[1], 1  # left padding
    ids[2, : len(rows[2])], mask[2, : len(rows[2])] = rows[2], 1
    logits = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    assert logits.shape == (3, t, tok.get_vocab_size()) and np.isfinite(logits).all()
    for got, row in [(logits[0, : len(rows[0])], rows[0]), (logits[1, t - len(rows[1]) :], rows[1])]:
        ref = reference(np.array(row))
        assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("prefix", ["", "transformer."])  # bare GPT2Model names, and GPT2LMHeadModel's
def test_gpt2_graph_matches_numpy_reference_with_padding(tok, tmp_path, prefix):
    ckpt = write_gpt2_checkpoint(tmp_path / "ckpt", tok, seed=3, n_embd=48, n_layer=3, n_head=6, prefix=prefix)
    export_gpt2(ckpt, tmp_path / "model.onnx")
    config, weights = read_config(ckpt), read_weights(ckpt)
    _assert_graph_matches(tok, tmp_path / "model.onnx", lambda ids: numpy_gpt2_logits(config, weights, ids))


@pytest.mark.parametrize(
    "tied,qkv_bias,kv_heads", [(False, False, 2), (True, True, 4), (False, False, 1)], ids=["gqa", "qwen2-tied", "mqa"]
)
def test_llama_graph_matches_numpy_reference_with_padding(tok, tmp_path, tied, qkv_bias, kv_heads):
    ckpt = write_llama_checkpoint(tmp_path / "ckpt", tok, seed=4, tied=tied, qkv_bias=qkv_bias, kv_heads=kv_heads)
    export_llama(ckpt, tmp_path / "model.onnx")
    config, weights = read_config(ckpt), read_weights(ckpt)
    _assert_graph_matches(tok, tmp_path / "model.onnx", lambda ids: numpy_llama_logits(config, weights, ids))


def test_export_llama_observer_with_gpt2_performer_sharing_a_tokenizer(tok, tmp_path, capsys):
    llama = write_llama_checkpoint(tmp_path / "llama", tok, seed=0)
    gpt2 = write_gpt2_checkpoint(tmp_path / "gpt2", tok, seed=0)
    assert main(["detectors", "export", str(llama), "--out", str(tmp_path / "bino"), "--performer", str(gpt2)]) == 0
    det = load_detector(str(tmp_path / "bino"))
    assert det.scorer.method == "binoculars"
    assert det.manifest["source"]["observer"]["architectures"] == ["LlamaForCausalLM"]
    scores = det.score(SENTENCES)
    assert np.isfinite(scores).all() and len(set(scores.round(9))) == len(SENTENCES)
    cfg = json.loads((llama / "config.json").read_text())
    (llama / "config.json").write_text(json.dumps(cfg | {"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}))
    assert "rope_scaling" in _fail(["export", str(llama), "--out", str(tmp_path / "x")], capsys)
    (llama / "config.json").write_text(json.dumps(cfg))
    weights = read_weights(llama)
    del weights["lm_head.weight"]  # untied, but the head is missing
    from safetensors.numpy import save_file

    save_file(weights, str(llama / "model.safetensors"))
    assert "no tensor 'lm_head.weight'" in _fail(["export", str(llama), "--out", str(tmp_path / "x")], capsys)


def test_export_writes_a_loadable_likelihood_detector(tok, tmp_path, capsys):
    ckpt = write_gpt2_checkpoint(tmp_path / "gpt2-tiny", tok, seed=0)
    rc = main(
        ["detectors", "export", str(ckpt), "--out", str(tmp_path / "zs"), "--name", "tiny-fdg", "--max-tokens", "32"]
    )
    assert rc == 0 and "fast-detectgpt detector 'tiny-fdg'" in capsys.readouterr().out
    files = sorted(p.name for p in (tmp_path / "zs").iterdir())
    assert files == ["manifest.json", "model.onnx", "tokenizer.json"]
    assert (tmp_path / "zs" / "tokenizer.json").read_bytes() == (ckpt / "tokenizer.json").read_bytes()
    manifest = json.loads((tmp_path / "zs" / "manifest.json").read_text())
    assert manifest["kind"] == "likelihood" and manifest["observer"] == "model.onnx" and "performer" not in manifest
    assert manifest["max_tokens"] == 32 and manifest["source"]["observer"]["architectures"] == ["GPT2LMHeadModel"]
    det = load_detector(str(tmp_path / "zs"))
    assert det.name == "tiny-fdg" and det.languages == ["en"] and det.min_words == 50
    assert ((det.score(SENTENCES) > 0) & (det.score(SENTENCES) < 1)).all()


def test_export_with_performer_is_binoculars_and_needs_one_tokenizer(tok, tmp_path):
    a = write_gpt2_checkpoint(tmp_path / "a", tok, seed=0)
    b = write_gpt2_checkpoint(tmp_path / "b", tok, seed=1)
    det_dir = export_checkpoint(a, tmp_path / "bino", performer=b)
    manifest = json.loads((det_dir / "manifest.json").read_text())
    assert manifest["method"] == "binoculars" and manifest["performer"] == "performer.onnx"
    files = sorted(p.name for p in det_dir.iterdir())
    assert files == ["manifest.json", "model.onnx", "performer.onnx", "tokenizer.json"]
    other = write_gpt2_checkpoint(tmp_path / "other", train_tokenizer(vocab_size=280), seed=2)
    with pytest.raises(DetectorError, match="different tokenizers"):
        export_checkpoint(a, tmp_path / "bad", performer=other)
    assert not (tmp_path / "bad").exists()  # nothing half-written is left behind


def test_export_caps_max_tokens_at_the_model_context(tok, tmp_path):
    ckpt = write_gpt2_checkpoint(tmp_path / "ckpt", tok, seed=0)  # context of 64 positions
    det = load_detector(str(export_checkpoint(ckpt, tmp_path / "det", max_tokens=1000)))
    assert det.manifest["max_tokens"] == det.scorer.max_tokens == 64
    assert np.isfinite(det.score([" ".join(SENTENCES * 10)])).all()


def test_export_builds_tokenizer_from_vocab_and_merges(tok, tmp_path):
    ckpt = write_gpt2_checkpoint(tmp_path / "ckpt", None, seed=0)
    cfg = json.loads((ckpt / "config.json").read_text()) | {"vocab_size": tok.get_vocab_size()}
    (ckpt / "config.json").write_text(json.dumps(cfg))
    write_gpt2_checkpoint(tmp_path / "same", tok, seed=0)  # same weights, with tokenizer.json
    shutil.copyfile(tmp_path / "same" / "model.safetensors", ckpt / "model.safetensors")
    tok.model.save(str(ckpt))  # vocab.json + merges.txt, as older GPT-2 checkpoints ship
    from_files = load_detector(str(export_checkpoint(ckpt, tmp_path / "d1")))
    from_json = load_detector(str(export_checkpoint(tmp_path / "same", tmp_path / "d2")))
    assert from_files.scorer.token_ids(SENTENCES) == from_json.scorer.token_ids(SENTENCES)
    np.testing.assert_allclose(from_files.score(SENTENCES), from_json.score(SENTENCES), atol=1e-7)


def test_export_uses_a_ready_onnx_causal_lm_of_any_architecture(tok, tmp_path):
    ckpt = write_gpt2_checkpoint(tmp_path / "ckpt", tok, seed=0)
    llama = tmp_path / "llama"
    llama.mkdir()
    export_gpt2(ckpt, llama / "model.onnx")  # stands in for a user's own ONNX export
    shutil.copyfile(ckpt / "tokenizer.json", llama / "tokenizer.json")
    (llama / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    det = load_detector(str(export_checkpoint(llama, tmp_path / "det")))
    reference = load_detector(str(export_checkpoint(ckpt, tmp_path / "ref")))
    np.testing.assert_array_equal(det.score(SENTENCES), reference.score(SENTENCES))


def _fail(argv, capsys) -> str:
    assert main(["detectors", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthweb: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_export_errors_are_one_clear_line(tok, tmp_path, capsys):
    ckpt = write_gpt2_checkpoint(tmp_path / "ckpt", tok, seed=0)
    out = str(tmp_path / "out")

    def config(**cfg):
        (ckpt / "config.json").write_text(json.dumps(cfg))

    good = (ckpt / "config.json").read_text()
    config(architectures=["BertForSequenceClassification"], model_type="bert")
    assert "sequence classifier" in _fail(["export", str(ckpt), "--out", out], capsys)
    config(architectures=["T5ForConditionalGeneration"], model_type="t5")
    assert "cannot export T5ForConditionalGeneration" in _fail(["export", str(ckpt), "--out", out], capsys)
    config(architectures=["FalconForCausalLM"], model_type="falcon")
    assert "no built-in ONNX builder" in _fail(["export", str(ckpt), "--out", out], capsys)
    (ckpt / "config.json").write_text("{not json")
    assert "unreadable config" in _fail(["export", str(ckpt), "--out", out], capsys)
    assert "no config.json" in _fail(["export", str(tmp_path), "--out", out], capsys)
    assert "not a directory" in _fail(["export", str(tmp_path / "nope"), "--out", out], capsys)

    (ckpt / "config.json").write_text(good)
    weights = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(weights[:100])
    assert "unreadable safetensors" in _fail(["export", str(ckpt), "--out", out], capsys)
    (ckpt / "model.safetensors").unlink()
    assert "missing model.safetensors" in _fail(["export", str(ckpt), "--out", out], capsys)
    (ckpt / "model.safetensors").write_bytes(weights)
    config(**json.loads(good) | {"n_embd": 64})  # config disagrees with the tensors
    assert "has shape" in _fail(["export", str(ckpt), "--out", out], capsys)
    assert not (tmp_path / "out").exists()

    (ckpt / "config.json").write_text(good)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert "not empty" in _fail(["export", str(ckpt), "--out", out], capsys)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
