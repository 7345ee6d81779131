"""The one settings loader: crawler/settings.py's constants, then SYNTHWEB_* environment variables, then overrides.

Environment variables are read when settings are loaded, never when a module is imported. A variable
named like a SYNTHWEB_* setting overrides it, converted to the type of the module's value (bool: 1/0,
true/false, yes/no, on/off; list: JSON or comma-separated; dict: JSON); `ALIASES` name the variables
of Scrapy's own settings. A value that does not convert is a `SettingsError` naming the variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from scrapy.settings import Settings

# Above the settings module (Scrapy's "project", 20), below explicit overrides ("cmdline", 40).
ENVIRONMENT_PRIORITY = 25
ALIASES = {"SYNTHWEB_USER_AGENT": "USER_AGENT", "SYNTHWEB_LOG_LEVEL": "LOG_LEVEL"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An environment variable whose value does not fit its setting."""


def _convert(name: str, raw: str, default):
    try:
        if isinstance(default, bool):
            if raw.strip().lower() not in _TRUE | _FALSE:
                raise ValueError("expected 1/0, true/false, yes/no or on/off")
            return raw.strip().lower() in _TRUE
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, list | tuple):
            if raw.lstrip().startswith("["):
                value = json.loads(raw)
                if not isinstance(value, list):
                    raise ValueError("expected a JSON list")
                return value
            return [item.strip() for item in raw.split(",") if item.strip()]
        if isinstance(default, dict):
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
    except ValueError as exc:
        raise SettingsError(f"environment {name}={raw!r}: {exc}") from None
    return raw


def environment_overrides(settings: Settings, environ: Mapping[str, str] | None = None) -> dict:
    """{setting: value} for the environment variables that override `settings`."""
    environ = os.environ if environ is None else environ
    found = {}
    for variable, raw in environ.items():
        name = ALIASES.get(variable, variable if variable.startswith("SYNTHWEB_") else None)
        if name is not None and name in settings:
            found[name] = _convert(variable, raw, settings[name])
    return found


def apply_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    for name, value in environment_overrides(settings, environ).items():
        settings.set(name, value, priority=ENVIRONMENT_PRIORITY)
    return settings


def load_settings(overrides: dict | None = None) -> Settings:
    """The project settings, whatever the working directory: the module, the environment, then `overrides`."""
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    apply_environment(settings)
    for name, value in (overrides or {}).items():
        if value is not None:
            settings.set(name, value, priority="cmdline")
    return settings
