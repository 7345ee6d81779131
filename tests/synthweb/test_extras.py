"""Optional extras: without the stream and charts packages, scoring works and distributed mode says what is missing."""

import json
import subprocess
import sys

import pytest

from tests.support.crawl import REPO

# Runs the CLI with the optional packages made unimportable, as after a plain `pip install .`.
WITHOUT_EXTRAS = """
import sys
BLOCKED = ("kafka", "faust", "prometheus_client", "croniter", "matplotlib", "mode", "aiokafka")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
import importlib.util
real_find_spec = importlib.util.find_spec
def find_spec(name, package=None):
    return None if name.split(".")[0] in BLOCKED else real_find_spec(name, package)
importlib.util.find_spec = find_spec
from synthweb.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _synthweb(*args, stdin=""):
    env = {"SYNTHWEB_DETECTOR": "hashed", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args], input=stdin, capture_output=True, text=True, cwd=REPO,
        env=env, timeout=120,
    )  # fmt: skip


def test_scoring_a_file_needs_no_kafka_faust_or_matplotlib():
    text = "The committee met on Tuesday to discuss the budget for next year and the plans for the new library. " * 3
    out = _synthweb("score", "-", stdin=json.dumps({"text": text}) + "\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert 0.0 <= json.loads(out.stdout)["p_synthetic"] <= 1.0


@pytest.mark.parametrize(
    "args, extra",
    [(["crawler", "--max-jobs", "1"], "stream"), (["worker"], "stream"), (["snapshot", "seeds.txt"], "stream")],
)
def test_distributed_commands_name_the_missing_extra(args, extra):
    out = _synthweb(*args)
    assert out.returncode == 2
    assert f"pip install 'synthweb[{extra}]'" in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr
