"""Shared fixtures: the local sample web, and a real Kafka broker for tests marked ``kafka``."""

import sys
import warnings
from pathlib import Path

import pytest

# kafka-python 3.0.12 loads its protocol schemas with the deprecated importlib.resources.read_text (~220
# DeprecationWarnings, all at import): import it once here, before any test module does, with those silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    import kafka as _kafka_python  # noqa: F401

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


@pytest.fixture(scope="session")
def kafka():
    """One real single-node KRaft broker on 127.0.0.1 for the whole session (jars fetched with Maven if missing)."""
    from stream.broker import KafkaBroker, fetch_libs, have_libs, java_executable

    if java_executable() is None:
        pytest.skip("java not found: the kafka tests need a JDK/JRE 17+ on PATH (or JAVA_HOME)")
    libs = None if have_libs() else fetch_libs()
    with KafkaBroker(libs=libs, start_timeout=90) as broker:
        yield broker
