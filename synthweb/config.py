"""Load the one settings module (crawler/settings.py) from anywhere, with overrides."""

from __future__ import annotations

from scrapy.settings import Settings


def load_settings(overrides: dict | None = None) -> Settings:
    """The project settings, whatever the working directory, with `overrides` on top."""
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    for name, value in (overrides or {}).items():
        if value is not None:
            settings.set(name, value, priority="cmdline")
    return settings
