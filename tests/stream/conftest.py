"""Fixtures for tests that need a real Apache Kafka broker (marked ``kafka``)."""

import warnings

import pytest

# kafka-python 3.0.12 loads its protocol schemas with the deprecated importlib.resources.read_text (~220
# DeprecationWarnings, all at import): import it once here with those silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    import kafka  # noqa: F401

from stream.broker import KafkaBroker, fetch_libs, have_libs, java_executable


@pytest.fixture(scope="session")
def kafka():
    """One real single-node KRaft broker on 127.0.0.1 for the whole session (jars fetched with Maven if missing)."""
    if java_executable() is None:
        pytest.skip("java not found: the kafka tests need a JDK/JRE 17+ on PATH (or JAVA_HOME)")
    libs = None if have_libs() else fetch_libs()
    with KafkaBroker(libs=libs, start_timeout=90) as broker:
        yield broker
