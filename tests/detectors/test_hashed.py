"""The fast hashed-n-gram detector: its kernel, its ONNX form, training and the shipped model."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from detectors import hashed
from detectors.runtime import DetectorError, load_detector

TEXTS = [
    "  Hello   World\n\nThe END.\t",
    "",
    "abc",
    "Ünïcode ça va  AB\r\n déjà",
    "x" * 5,
]


def reference_ids(text: str, bits: int, max_n: int) -> list[int]:
    """The documented features in plain Python: ASCII-lowercased, whitespace-collapsed byte n-grams."""
    data = " ".join(text.split()).encode()
    data = bytes(c + 32 if 65 <= c <= 90 else c for c in data)
    ids = []
    for end in range(len(data)):
        for n in range(1, min(end + 1, max_n) + 1):
            key = int.from_bytes(data[end - n + 1 : end + 1], "big")
            ids.append(((key * 0x9E3779B1) & 0xFFFFFFFF) >> (32 - bits))
    return ids


@pytest.mark.parametrize("max_n", [1, 3, 4])
def test_kernel_ids_match_the_python_reference(max_n):
    ids, doc_ids, counts = hashed.ngram_ids(TEXTS, 16, max_n)
    for k, text in enumerate(TEXTS):
        expected = reference_ids(text, 16, max_n)
        assert ids[doc_ids == k].tolist() == expected
        assert counts[k] == len(expected)


def test_fused_scores_match_the_onnx_model():
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=1 << 12).astype(np.float32), 0.25
    fused = hashed.linear_scores(TEXTS, weights, bias, 4)
    ids, doc_ids, counts = hashed.ngram_ids(TEXTS, 12, 4)
    sess = ort.InferenceSession(hashed.onnx_model(weights, bias), providers=["CPUExecutionProvider"])
    onnx_scores = sess.run(None, {"ngram_ids": ids, "doc_ids": doc_ids, "n_ngrams": counts.astype(np.float32)})[0]
    np.testing.assert_allclose(fused, onnx_scores, atol=1e-6)
    assert fused[1] == pytest.approx(1 / (1 + np.exp(-bias)))  # empty text: only the bias


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="max_n"):
        hashed.ngram_ids(["text"], 16, 5)


def test_training_on_a_tiny_corpus_ships_a_loadable_detector(tmp_path):
    pytest.importorskip("sklearn")
    from detectors.hashed_train import main

    corpus = tmp_path / "data" / "run"
    corpus.mkdir(parents=True)
    rng = np.random.default_rng(1)
    plain, fancy = ["the", "a", "cat", "dog", "sat", "ran"], ["moreover", "delve", "tapestry", "furthermore"]
    for domain in ("xsum", "squad", "writing"):
        for gen in ("gpt2-xl", "gpt-4"):
            human = [" ".join(rng.choice(plain, 60)) + f" {domain} {gen} {i}" for i in range(12)]
            machine = [" ".join(rng.choice(plain + fancy, 60)) for _ in range(12)]
            (corpus / f"{domain}_{gen}.raw_data.json").write_text(json.dumps({"original": human, "sampled": machine}))
    out = tmp_path / "fast"
    main(["--data", str(tmp_path / "data"), "--out", str(out), "--bits", "12", "--skip-heldout"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "hashed-ngrams" and manifest["bits"] == 12
    detector = load_detector(str(out))
    human, machine = detector.score([" ".join(plain * 10)]), detector.score([" ".join(fancy * 15)])
    assert machine[0] > 0.5 > human[0]


def test_manifest_and_weights_must_agree(tmp_path):
    shipped = load_detector("hashed").path
    (tmp_path / "model.onnx").write_bytes((shipped / "model.onnx").read_bytes())
    manifest = json.loads((shipped / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "bits": 12}))
    with pytest.raises(DetectorError, match="weights"):
        load_detector(str(tmp_path))


def test_shipped_hashed_detector_separates_the_calibration_split():
    detector = load_detector("hashed")
    assert detector.kind == "hashed-ngrams"
    cal = detector.calibration
    assert cal["tpr"] > cal["fpr"] + 0.3
    scores = detector.score(["Some text. " * 30, ""])
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_weights_are_read_without_the_onnx_package_exactly_as_onnx_reads_them(tmp_path):
    import onnx
    from onnx import numpy_helper

    from detectors.hashed import onnx_model, read_onnx_weights

    weights = np.random.default_rng(0).normal(size=1 << 10).astype(np.float32)
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_model(weights, -0.75))
    ours, bias = read_onnx_weights(path)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    assert ours.dtype == np.float32 and np.array_equal(ours, inits["weights"]) and np.array_equal(ours, weights)
    assert bias == float(inits["bias"]) == -0.75
