"""Stages that crash a worker at an exact point of the stage list, for fault tests (SYNTHWEB_STAGES).

A stage reads its trigger from the environment (test-only variables, not settings): the first batch
holding a page whose url ends with the trigger ends the process with os._exit, as kill -9 would,
and leaves a marker file so the restarted worker goes past it.
"""

from __future__ import annotations

import os
from pathlib import Path

from synthweb.pipeline import Stage


class _CrashOnce(Stage):
    variable = ""

    def __init__(self, url_suffix: str, marker: Path):
        self.url_suffix = url_suffix
        self.marker = marker

    @classmethod
    def from_settings(cls, settings) -> _CrashOnce:
        url_suffix = os.environ.get(cls.variable, "")
        return cls(url_suffix, Path(os.environ.get("SYNTHWEB_TEST_MARKERS", ".")) / cls.variable)

    def run(self, pages):
        batch = list(pages)
        if self.url_suffix and not self.marker.exists() and any(p.url.endswith(self.url_suffix) for p in batch):
            self.marker.touch()
            os._exit(137)
        yield from batch


class CrashBeforeStore(_CrashOnce):
    """Put before StoreStage: the batch's dead letters are sent, none of its pages stored."""

    name = "crash-before-store"
    variable = "SYNTHWEB_TEST_CRASH_BEFORE_STORE"


class CrashAfterStore(_CrashOnce):
    """Put after StoreStage: the batch is stored, its offsets never committed."""

    name = "crash-after-store"
    variable = "SYNTHWEB_TEST_CRASH_AFTER_STORE"


class FailAlone(Stage):
    """Fails every batch holding a page whose url ends with $SYNTHWEB_TEST_POISON: it ends up dead-lettered."""

    name = "fail-alone"

    def __init__(self, url_suffix: str):
        self.url_suffix = url_suffix

    @classmethod
    def from_settings(cls, settings) -> FailAlone:
        return cls(os.environ.get("SYNTHWEB_TEST_POISON", ""))

    def run(self, pages):
        batch = list(pages)
        if self.url_suffix and any(p.url.endswith(self.url_suffix) for p in batch):
            raise RuntimeError("poisoned page")
        yield from batch


class FreezeStore(Stage):
    """Put before StoreStage: at batch $SYNTHWEB_TEST_FREEZE_AT (1 = the first) it makes the chDB store's directory
    immutable (`chattr -R +i`, as a failed or full disk behaves), for $SYNTHWEB_TEST_FREEZE_SECONDS (0: for good;
    the test thaws it)."""

    name = "freeze-store"

    def __init__(self, path: Path | None, at: int, seconds: float):
        self.path, self.at, self.seconds = path, at, seconds
        self.batches = 0

    @classmethod
    def from_settings(cls, settings) -> FreezeStore:
        from synthweb.store import chdb_path, normalize_dsn

        path = chdb_path(normalize_dsn(settings.get("SYNTHWEB_DB")))
        at = int(os.environ.get("SYNTHWEB_TEST_FREEZE_AT", "1"))
        return cls(path, at, float(os.environ.get("SYNTHWEB_TEST_FREEZE_SECONDS", "0")))

    def run(self, pages):
        batch = list(pages)
        self.batches += 1
        if self.path is not None and self.batches == self.at:
            immutable(self.path, True)
            if self.seconds:
                import threading

                threading.Timer(self.seconds, immutable, (self.path, False)).start()
        yield from batch


def immutable(path: Path, on: bool) -> None:
    """Set or clear the immutable flag on a directory tree (writes then fail as on a failed or full disk)."""
    import subprocess

    subprocess.run(["chattr", "-Rf", "+i" if on else "-i", str(path)], check=False)


def require_immutable_flag(tmp_path: Path) -> None:
    """Skip where chattr is missing or the filesystem has no immutable flag (tmpfs, overlayfs)."""
    import shutil

    import pytest

    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed")
    probe = tmp_path / "probe"
    probe.mkdir()
    immutable(probe, True)
    try:
        (probe / "x").touch()
    except PermissionError:
        return
    finally:
        immutable(probe, False)
    pytest.skip("this filesystem ignores the immutable flag")
