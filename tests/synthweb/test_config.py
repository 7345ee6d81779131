"""The one settings loader: module constants, then SYNTHWEB_* environment variables, then overrides."""

import importlib

import pytest

from synthweb.config import SettingsError, environment_overrides, load_settings
from synthweb.pipeline import stage_classes


def test_environment_overrides_are_converted_to_the_type_of_the_setting(monkeypatch):
    monkeypatch.setenv("SYNTHWEB_BATCH_SIZE", "12")
    monkeypatch.setenv("SYNTHWEB_WAYBACK_RATE", "0.5")
    monkeypatch.setenv("SYNTHWEB_SITEMAPS", "off")
    monkeypatch.setenv("SYNTHWEB_STAGES", "crawler.extract.ExtractStage, synthweb.store.StoreStage")
    monkeypatch.setenv("SYNTHWEB_USER_AGENT", "probe/1.0")
    monkeypatch.setenv("SYNTHWEB_NOT_A_SETTING", "x")  # not ours to apply (the detector library reads its own)
    settings = load_settings({"SYNTHWEB_BATCH_SIZE": 7})
    assert settings["SYNTHWEB_BATCH_SIZE"] == 7  # an explicit override beats the environment
    assert settings["SYNTHWEB_WAYBACK_RATE"] == 0.5 and settings["SYNTHWEB_SITEMAPS"] is False
    assert settings.getlist("SYNTHWEB_STAGES") == ["crawler.extract.ExtractStage", "synthweb.store.StoreStage"]
    assert settings["USER_AGENT"] == "probe/1.0"
    assert "SYNTHWEB_NOT_A_SETTING" not in settings
    monkeypatch.delenv("SYNTHWEB_BATCH_SIZE")
    assert load_settings()["SYNTHWEB_BATCH_SIZE"] == 64


def test_a_value_that_does_not_fit_its_setting_is_one_clear_error():
    settings = load_settings()
    with pytest.raises(SettingsError, match="SYNTHWEB_TOPIC_PARTITIONS='six'"):
        environment_overrides(settings, {"SYNTHWEB_TOPIC_PARTITIONS": "six"})
    with pytest.raises(SettingsError, match="SYNTHWEB_SITEMAPS"):
        environment_overrides(settings, {"SYNTHWEB_SITEMAPS": "maybe"})


def test_the_settings_module_reads_nothing_when_imported(monkeypatch):
    import crawler.settings

    monkeypatch.setenv("SYNTHWEB_DB", "chdb:///elsewhere")
    assert importlib.reload(crawler.settings).SYNTHWEB_DB == "chdb:///./synthweb-data"
    assert load_settings()["SYNTHWEB_DB"] == "chdb:///elsewhere"


def test_a_stage_path_of_an_earlier_release_still_loads():
    from synthweb.score import ScoreStage

    settings = load_settings({"SYNTHWEB_STAGES": ["detectors.stage.ScoreStage"]})
    assert stage_classes(settings) == [ScoreStage]
