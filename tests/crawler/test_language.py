import lzma
import os
from importlib import metadata

import py3langid
import pytest

from crawler import language

TEXTS = {
    "en": "The committee met on Tuesday to discuss the budget for the coming year and the new library.",
    "fr": "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine et de la bibliothèque.",
    "de": "Der Ausschuss traf sich am Dienstag, um den Haushalt für das kommende Jahr zu besprechen.",
    "ja": "委員会は火曜日に会合を開き、来年度の予算と新しい図書館について話し合った。",
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHWEB_CACHE", str(tmp_path))
    language.identifier.cache_clear()
    yield tmp_path / "py3langid"
    language.identifier.cache_clear()


def test_the_cached_model_classifies_as_py3langid_does(cache):
    for lang, text in TEXTS.items():
        assert language.detect_language(text) == lang
        assert language.identifier().classify(text) == py3langid.classify(text)
    (written,) = cache.glob("model-*.npz")
    assert written.name.startswith(f"model-{metadata.version('py3langid')}-")  # an upgrade writes a new copy


def test_a_second_process_reads_the_copy_without_decompressing(cache, monkeypatch):
    language.detect_language(TEXTS["en"])
    assert len(list(cache.glob("model-*.npz"))) == 1
    language.identifier.cache_clear()

    def refuse(*args, **kwargs):
        raise AssertionError("decompressed the shipped model although a copy was cached")

    monkeypatch.setattr(lzma, "decompress", refuse)
    assert language.detect_language(TEXTS["fr"]) == "fr"


def test_a_cut_short_copy_is_rewritten(cache):
    language.detect_language(TEXTS["en"])
    (written,) = cache.glob("model-*.npz")
    size = written.stat().st_size
    written.write_bytes(written.read_bytes()[:1000])
    language.identifier.cache_clear()
    assert language.detect_language(TEXTS["de"]) == "de"
    assert written.stat().st_size == size
    assert not list(cache.glob(".model-*"))  # no temporary file left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only modes")
def test_an_unwritable_cache_still_classifies(cache):
    cache.mkdir(parents=True)
    cache.chmod(0o500)
    try:
        assert language.detect_language(TEXTS["ja"]) == "ja"
        assert not list(cache.iterdir())
    finally:
        cache.chmod(0o700)


def test_a_cache_path_that_is_a_file_still_classifies(cache):
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a directory")  # works as root too, unlike a read-only mode
    assert language.detect_language(TEXTS["en"]) == "en"
