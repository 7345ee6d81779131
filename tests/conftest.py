"""Shared fixtures."""

import sys
from pathlib import Path

import pytest

# Subprocess crawls and `python -m` need the repo importable wherever pytest is started.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def sample_web():
    """The local sample web (synthweb.sampleweb), started once per test session."""
    from synthweb.sampleweb import SampleWeb

    with SampleWeb() as web:
        yield web
