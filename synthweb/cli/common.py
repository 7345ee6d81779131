"""What every command group shares: the user-error type, the common options, settings, store and detector."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from synthweb.config import load_settings


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


# The optional packages behind each extra of pyproject.toml, by import name.
EXTRAS = {"stream": ("kafka", "faust", "prometheus_client", "croniter"), "charts": ("matplotlib",)}


def require_extra(extra: str, command: str) -> None:
    """A one-line CliError when the packages of an optional extra are not installed."""
    import importlib.util

    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise CliError(
            f"{command} needs the {extra} extra (missing {', '.join(missing)}): pip install 'synthweb[{extra}]'"
        )


def db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="store DSN: chdb:///path (embedded, default ./synthweb-data) or http(s)://user:pass@host:port/db; "
        "env SYNTHWEB_DB",
    )


def detector_option(parser: argparse.ArgumentParser, several: bool = False) -> None:
    from crawler import settings

    what = "detector name or directory" + ("; several, comma-separated, to compare them" if several else "")
    parser.add_argument(
        "--detector", default=None, help=f"{what} (env SYNTHWEB_DETECTOR, default: {settings.SYNTHWEB_DETECTOR})"
    )


def method_option(parser: argparse.ArgumentParser) -> None:
    from synthweb.estimate import DEFAULT_METHOD, METHODS

    parser.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="share estimator (default: the one measured best for the detector on held-out mixtures, named in "
        f"its calibration.json, else {DEFAULT_METHOD}; see docs/estimation.md)",
    )


def settings_for(args: argparse.Namespace, **extra):
    """The settings with the command's --db / --detector and `extra` (None values left out) on top."""
    overrides = {"SYNTHWEB_DB": getattr(args, "db", None), "SYNTHWEB_DETECTOR": getattr(args, "detector", None)}
    overrides.update(extra)
    return load_settings(overrides)


def open_store(settings, must_exist: bool = False):
    """The migrated store, or a one-line CliError. `must_exist` (read commands): an embedded store path with
    no store there is an error, not a new empty store (a mistyped --db would report nothing, silently)."""
    from synthweb.store import Store, StoreError, chdb_path, normalize_dsn

    if must_exist:
        try:
            path = chdb_path(normalize_dsn(settings.get("SYNTHWEB_DB")))
        except StoreError as exc:
            raise CliError(str(exc)) from exc
        if path is not None and not (path.is_dir() and any(path.iterdir())):
            raise CliError(
                f"no store at {path} (a typo in --db / SYNTHWEB_DB?); `synthweb run` or `ingest` creates one"
            )
    try:
        store = Store(settings.get("SYNTHWEB_DB"))
        store.migrate()
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # server-side errors while migrating
        raise CliError(f"cannot prepare store: {exc}") from exc
    return store


def load_detector(settings, setting: str = "SYNTHWEB_DETECTOR", models: bool = True):
    """The detector the setting names (default the configured one), or a one-line CliError.

    `models=False`: its description only (name, version, calibration), for commands that read the store, not text.
    """
    from detectors.runtime import DetectorError, describe_detector, load_detector

    try:
        return (load_detector if models else describe_detector)(settings.get(setting))
    except DetectorError as exc:
        raise CliError(str(exc)) from exc


def read_jsonl(path: str) -> Iterator[tuple[int, dict]]:
    """detectors.jsonl.read_jsonl, its errors as one-line CliErrors."""
    from detectors.jsonl import read_jsonl
    from detectors.runtime import DetectorError

    try:
        yield from read_jsonl(path)
    except DetectorError as exc:
        raise CliError(str(exc)) from exc


def chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
