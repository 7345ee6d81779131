"""What `pip install .` installs: our packages and the shipped detectors, never a store or the tests."""

import shutil
import tomllib
from pathlib import Path

from setuptools import find_namespace_packages

REPO = Path(__file__).resolve().parents[1]


def test_the_package_patterns_leave_out_stores_and_tests(tmp_path):
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in ("synthweb", "detectors", "schemas"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns(".cache", "__pycache__"))
    (tmp_path / "synthweb-data" / "store").mkdir(parents=True)  # the default embedded store, in the checkout
    (tmp_path / "tests" / "support").mkdir(parents=True)
    found = set(find_namespace_packages(str(tmp_path), include=find["include"]))
    assert {"synthweb", "synthweb.cli", "detectors", "detectors.shipped.zeroshot", "schemas"} <= found
    assert not [p for p in found if p.startswith(("synthweb-data", "tests"))], found
