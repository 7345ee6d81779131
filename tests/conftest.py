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


@pytest.fixture
def detector_copy(tmp_path):
    """Make copies of the shipped lexical detector: copy(name, calibration or None, **manifest) -> its path."""
    import json
    import shutil

    from detectors.runtime import SHIPPED

    def copy(name: str, calibration: dict | None, **manifest) -> str:
        out = tmp_path / "detectors" / name
        shutil.copytree(SHIPPED / "lexical", out)
        meta = json.loads((out / "manifest.json").read_text()) | {"name": name, **manifest}
        if calibration is None:
            meta.pop("calibration")
        else:
            (out / "calibration.json").write_text(json.dumps(calibration))
        (out / "manifest.json").write_text(json.dumps(meta))
        return str(out)

    return copy


@pytest.fixture(scope="session")
def sample_web():
    """The local sample web (synthweb.sampleweb), started once per test session."""
    from synthweb.sampleweb import SampleWeb

    with SampleWeb() as web:
        yield web


@pytest.fixture(scope="session")
def kafka():
    """One real single-node KRaft broker on 127.0.0.1 for the whole session (jars fetched with Maven if missing)."""
    from tests.support.broker import KafkaBroker, fetch_libs, have_libs, java_executable

    if java_executable() is None:
        pytest.skip("java not found: the kafka tests need a JDK/JRE 17+ on PATH (or JAVA_HOME)")
    libs = None if have_libs() else fetch_libs()
    with KafkaBroker(libs=libs, start_timeout=90) as broker:
        yield broker


# The politeness shortcuts the crawl tests use (Crawl-delay still holds).
FAST_CRAWL = {"DOWNLOAD_DELAY": 0.02, "AUTOTHROTTLE_START_DELAY": 0.02, "SYNTHWEB_MAX_QUERY_VARIANTS": 4}


@pytest.fixture(scope="session")
def embedded_urls(sample_web):
    """URLs per site host that an embedded crawl of the sample web records: the fleet must send the same."""
    from collections import defaultdict
    from urllib.parse import urlsplit

    from tests.support.crawl import crawl_in_subprocess

    _, pages = crawl_in_subprocess(sample_web.seeds, {**FAST_CRAWL, "SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True})
    by_site = defaultdict(set)
    for page in pages:
        by_site[urlsplit(page["url"]).hostname].add(page["url"])
    return dict(by_site)
