"""Crawls that point at cloud metadata services, run where nothing but loopback exists (`unshare -rn`)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).with_name("netns_crawl.py")


def in_loopback_namespace() -> dict:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no unprivileged network namespaces here: {probe.stderr.strip()}")
    proc = subprocess.run(
        ["unshare", "-rn", sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=180
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_metadata_addresses_are_refused_even_with_private_networks_allowed():
    result = in_loopback_namespace()
    assert result["outside_reachable"] is False  # the namespace holds loopback only: nothing could leak
    by_url = {p["url"]: p for p in result["pages"]}
    site = next(p for url, p in by_url.items() if url.startswith("http://127.0.0.6:"))
    # The redirect to the metadata service is recorded on the site's page and never followed.
    assert site["skip"] == "offsite_redirect" and "169.254.169.254" in site["skip_detail"]
    assert result["requests"] == ["/robots.txt", "/"]
    # Seeds naming metadata services are refused by the address guard, not tried and failed.
    for url in ("http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/computeMetadata/v1/",
                "http://100.100.100.200/latest/meta-data/"):  # fmt: skip
        assert by_url[url]["skip"] == "private_network", by_url[url]
    assert "fetch_error" not in result["summary"].get("skipped", {})
