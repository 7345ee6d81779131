"""The MiniLM encoder detector: ONNX graph vs numpy BERT, variants, runtime kinds, the ensemble."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from detectors.ensemble import combine
from detectors.metrics import auroc
from detectors.onnx_bert import (
    bert_reference,
    build_bert_onnx,
    random_bert_weights,
    read_safetensors,
    to_fp16,
    to_int8,
)
from detectors.runtime import SHIPPED, Detector, DetectorError, load_detector

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TINY = {
    "vocab_size": 40,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "max_position_embeddings": 32,
    "layer_norm_eps": 1e-12,
}
WORDS = "the a dog cat sat on mat machine human wrote text it was good very model ##s ##ed and of to".split()
TEXTS = ["The dog sat on the mat.", "A cat wrote text, and it was very good.", "machine", "the the the " * 20]


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, TINY["vocab_size"], (3, 12))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 2:] = 0
    return ids, mask


def test_onnx_graph_matches_numpy_reference():
    weights = random_bert_weights(TINY)
    ids, mask = _batch()
    emb, means = _session(build_bert_onnx(weights, TINY)).run(None, {"input_ids": ids, "attention_mask": mask})
    ref = bert_reference(weights, TINY, ids, mask)
    assert means.shape == (3, 2, 16) and emb.shape == (3, 16)
    assert np.abs(emb - ref["embedding"]).max() < 1e-5
    assert np.abs(means - ref["layer_means"]).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_padding_does_not_change_the_embedding():
    sess = _session(build_bert_onnx(random_bert_weights(TINY), TINY))
    ids, mask = _batch()
    padded = sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    alone = sess.run(["embedding"], {"input_ids": ids[1:2, :7], "attention_mask": mask[1:2, :7]})[0]
    assert np.abs(padded[1] - alone[0]).max() < 1e-5


def test_read_safetensors_roundtrip(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([[1, 2]], dtype=np.int64)
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "I64", "shape": [1, 2], "data_offsets": [24, 40]},
    }
    raw = json.dumps(header).encode()
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + a.tobytes() + b.tobytes())
    got = read_safetensors(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], b)


def test_quantized_and_fp16_variants_load_and_agree(tmp_path):
    import onnx

    model = build_bert_onnx(random_bert_weights(TINY), TINY)
    onnx.save(model, str(tmp_path / "fp32.onnx"))
    to_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    ids, mask = _batch()
    feeds = {"input_ids": ids, "attention_mask": mask}
    ref = _session(model).run(["embedding"], feeds)[0]
    int8 = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    assert any(
        n.op_type.startswith(("MatMulInteger", "DynamicQuantize")) for n in onnx.load(tmp_path / "int8.onnx").graph.node
    )
    for got in (int8.run(["embedding"], feeds)[0], _session(to_fp16(model)).run(["embedding"], feeds)[0]):
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert (np.sum(got * ref, axis=1) > 0.95).all()  # cosine of unit vectors


def _tiny_encoder_dir(tmp_path, build_model=True):
    """A complete onnx-encoder detector directory with a tiny random BERT and WordPiece vocabulary."""
    import onnx
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece
    from tokenizers.processors import TemplateProcessing

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", ".", ","] + WORDS)}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    d = tmp_path / "tiny-encoder"
    d.mkdir()
    tok.save(str(d / "tokenizer.json"))
    if build_model:
        onnx.save(build_bert_onnx(random_bert_weights(TINY), TINY), str(d / "model.onnx"))
    rng = np.random.default_rng(3)
    head = {
        "layers": [0, 1],
        "mean": [0.0] * 32,
        "scale": [1.0] * 32,
        "coef": rng.normal(size=32).tolist(),
        "intercept": 0.1,
    }
    (d / "head.json").write_text(json.dumps(head))
    manifest = {"name": "tiny-encoder", "version": "0", "kind": "onnx-encoder", "model": "model.onnx",
                "tokenizer": "tokenizer.json", "head": "head.json", "max_tokens": 16,
                "preprocess": ["collapse_whitespace"], "languages": ["en"], "min_words": 1}  # fmt: skip
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_encoder_detector_scores_in_order_and_batch_invariant(tmp_path):
    det = load_detector(str(_tiny_encoder_dir(tmp_path)))
    assert det.kind == "onnx-encoder" and "CPUExecutionProvider" in det.providers
    scores = det.score(TEXTS, batch_size=4)
    assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()
    assert len(set(np.round(scores, 6))) == 4  # distinct texts, distinct scores
    np.testing.assert_allclose(det.score(TEXTS, batch_size=1), scores, atol=1e-5)
    np.testing.assert_allclose(det.score(TEXTS[::-1], batch_size=3), scores[::-1], atol=1e-5)
    assert det.score([]).shape == (0,)


def test_missing_encoder_model_says_how_to_build(tmp_path):
    with pytest.raises(DetectorError, match="python -m detectors.encoder build"):
        load_detector(str(_tiny_encoder_dir(tmp_path, build_model=False)))


def test_ensemble_combines_member_scores(tmp_path, monkeypatch):
    member = _tiny_encoder_dir(tmp_path)
    monkeypatch.setenv("SYNTHWEB_DETECTORS_PATH", str(tmp_path))
    combiner = {"members": ["tiny-encoder", "lexical"], "coef": [0.7, 1.3], "intercept": -0.2}
    ens = tmp_path / "tiny-ensemble"
    ens.mkdir()
    (ens / "combiner.json").write_text(json.dumps(combiner))
    manifest = {"name": "tiny-ensemble", "version": "0", "kind": "ensemble", "members": combiner["members"],
                "combiner": "combiner.json", "languages": ["en"], "min_words": 50}  # fmt: skip
    (ens / "manifest.json").write_text(json.dumps(manifest))
    det = load_detector(str(ens))
    members = np.stack([load_detector(str(member)).score(TEXTS), load_detector("lexical").score(TEXTS)], axis=1)
    np.testing.assert_allclose(det.score(TEXTS), combine(combiner, members), atol=1e-9)
    assert det.min_words == 50

    (ens / "combiner.json").write_text(json.dumps({**combiner, "members": ["lexical"]}))
    with pytest.raises(DetectorError, match="combiner members"):
        Detector(ens)  # not load_detector: that one caches the instance per directory


@pytest.fixture(scope="module")
def minilm():
    if not (SHIPPED / "minilm" / "model.onnx").is_file():
        pytest.skip("minilm model.onnx not built (python -m detectors.encoder build; scripts/setup.sh does it)")
    return load_detector("minilm")


def test_shipped_minilm_separates_calibration_split(minilm):
    data = pytest.importorskip("detectors.data")
    try:
        records = data.load_records()
    except FileNotFoundError:
        pytest.skip("shared detector corpus not available")
    _, calib = data.split_groups(records, holdout=0.2, salt="calib")
    sample = [r for r in records if r.group in calib][::40]
    scores = minilm.score([r.text for r in sample])
    assert auroc([r.label for r in sample], scores) > 0.8


def test_shipped_ensemble_loads(minilm):
    det = load_detector("ensemble")
    assert [m.name for m in det.scorer.members] == det.manifest["members"]
    assert det.calibration["bins"] == 50
    scores = det.score(TEXTS)
    assert ((scores >= 0) & (scores <= 1)).all()
