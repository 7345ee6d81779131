"""The shipped language models as built by `synthweb detectors build`: tokenizers, graphs, perplexity, greedy text."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from tiny_lm import numpy_llama_logits

from detectors.lm_build import CHECK_TEXT, MODELS, model_dir, perplexity, require_built

ROUND_TRIP = [
    "The year 2024 had 366 days, and 12.5% of them were rainy.",
    "Two  spaces, a tab\there, and a newline\nthen more.",
    "Naïve café façade — “quoted” text… and an emoji 🙂.",
    "日本語のテキストも読めます。",
]


@pytest.fixture(scope="module")
def smollm2():
    from tokenizers import Tokenizer

    directory = require_built("smollm2-135m")
    session = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    return {"dir": directory, "session": session, "tok": Tokenizer.from_file(str(directory / "tokenizer.json"))}


def logits(session, ids: list[int]) -> np.ndarray:
    x = np.array([ids], dtype=np.int64)
    return session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x)})[0][0]


def test_smollm2_tokenizer_round_trips_and_starts_with_its_prefix(smollm2):
    tok = smollm2["tok"]
    for text in ROUND_TRIP:
        enc = tok.encode(text)
        assert enc.tokens[0] == MODELS["smollm2-135m"]["prefix"]
        assert tok.decode(enc.ids, skip_special_tokens=True) == text
    assert tok.encode("Hello world").tokens[1:] == ["Hello", "Ġworld"]


@pytest.mark.slow
def test_smollm2_graph_matches_a_numpy_forward_on_the_real_weights(smollm2):
    from detectors.gguf_read import GGUFFile, llama_checkpoint

    config, weights = llama_checkpoint(GGUFFile(MODELS["smollm2-135m"]["gguf"]()))
    ids = smollm2["tok"].encode("The committee met on Tuesday to discuss").ids
    got = logits(smollm2["session"], ids)
    want = numpy_llama_logits(config, weights, np.array(ids))
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()
    assert (got.argmax(-1) == want.argmax(-1)).all()


@pytest.mark.slow
def test_smollm2_reads_english_like_a_language_model(smollm2):
    ppl = perplexity(smollm2["dir"], CHECK_TEXT)
    assert 10 < ppl < 40  # measured 21.5; the wrong rotary layout gives ~370
    ids = smollm2["tok"].encode("The capital of France is").ids
    for _ in range(3):
        ids.append(int(logits(smollm2["session"], ids)[-1].argmax()))
    assert "Paris" in smollm2["tok"].decode(ids)


@pytest.mark.slow
def test_smollm2_chat_template_opens_an_assistant_answer(smollm2):
    """The chat reading's context is SmolLM2-Instruct's own template, so its next token starts an answer."""
    template = MODELS["smollm2-135m"]["chat_template"]
    enc = smollm2["tok"].encode(template)
    ids = enc.ids
    assert enc.tokens[0] == MODELS["smollm2-135m"]["prefix"]
    assert enc.tokens.count("<|im_start|>") == 3 and enc.tokens.count("<|im_end|>") == 2  # special tokens whole
    assert smollm2["tok"].decode(ids[-3:]) == "assistant\n"
    first = logits(smollm2["session"], ids)[-1]
    # an answer opens with a word, not with more template
    assert smollm2["tok"].id_to_token(int(first.argmax())) not in ("<|im_start|>", "<|im_end|>", "Ċ")


def test_the_model_store_follows_its_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHWEB_MODELS", str(tmp_path))
    assert model_dir("smollm2-135m", "fp16") == tmp_path / "smollm2-135m" / "fp16"
