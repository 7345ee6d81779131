"""The LM trainer's caches: per-token statistics in chunks, per-text columns in a committed table."""

import numpy as np
import pytest

from detectors import lm_train
from detectors.data import Record
from detectors.token_stats import CONTRAST_NAMES, FEATURE_NAMES


@pytest.fixture
def texts(tmp_path, monkeypatch):
    monkeypatch.setattr(lm_train, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(lm_train, "TABLES", tmp_path / "tables")
    monkeypatch.setattr(lm_train, "CHUNK", 4)
    return [Record(f"text {i}", i % 2, "xsum", "gpt-4" if i % 2 else "human", f"g{i}") for i in range(10)]


def _cache(texts, n, reading="plain", seed=0):
    """Per-token statistics of the first `n` texts in the trainer's chunks (80 tokens each)."""
    rng = np.random.default_rng(seed)
    key = lm_train.sample_key(texts)
    for c in range(n // lm_train.CHUNK):
        stats = rng.normal(-3, 1, size=(lm_train.CHUNK * 80, 5)).astype(np.float32)
        stats[:, 3] = stats[:, 2] ** 2 + 1  # E[log p^2] above E[log p]^2: a variance
        path = lm_train._chunk_file("m", key, c, reading)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, lengths=[80] * lm_train.CHUNK, stats=stats)


def test_a_table_answers_for_the_texts_its_cache_covered(texts):
    _cache(texts, 8)
    _cache(texts, 4, reading="chat", seed=1)
    n, plain = lm_train.load_columns("m", texts)
    n_chat, chat = lm_train.load_columns("m", texts, reading="chat")
    assert (n, n_chat) == (8, 4)  # finished chunks only; contrasts need both readings
    assert plain.shape == (8, len(FEATURE_NAMES)) and chat.shape == (4, len(CONTRAST_NAMES))
    lm_train.write_table("m", texts)
    lm_train.write_table("m", texts, reading="chat")
    for path in (lm_train.CACHE / "m").iterdir():
        path.unlink()  # the cache is gone, as on a fresh clone
    n, again = lm_train.load_columns("m", texts)
    assert n == 8
    np.testing.assert_allclose(again, plain, rtol=1e-6)
    n_chat, again = lm_train.load_columns("m", texts, reading="chat")
    assert n_chat == 4
    np.testing.assert_allclose(again, chat, rtol=1e-5)
    other = texts[:9]  # another set of texts never reads this table
    assert lm_train.load_columns("m", other)[0] == 0


def test_the_cache_resumes_after_the_table(texts):
    _cache(texts, 8)
    _, whole = lm_train.load_columns("m", texts)
    lm_train._chunk_file("m", lm_train.sample_key(texts), 1).unlink()
    assert lm_train.load_columns("m", texts)[0] == 4  # chunk 1 gone: the run of chunks stops at 0
    lm_train.write_table("m", texts)
    assert lm_train._table_chunks(len(lm_train._table("m", texts, "plain")), len(texts)) == 1
    _cache(texts, 8)  # chunk 1 computed again (the same numbers): the columns run on from the table
    n, again = lm_train.load_columns("m", texts)
    assert n == 8
    np.testing.assert_allclose(again, whole, rtol=1e-6)
    lm_train.write_table("m", texts)
    for path in (lm_train.CACHE / "m").iterdir():
        path.unlink()
    assert lm_train.load_columns("m", texts)[0] == 8
    assert lm_train._table_chunks(len(lm_train._table("m", texts, "plain")), len(texts)) == 2
