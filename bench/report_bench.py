"""What a report costs before it reads the store: loading its detectors, or only describing them.

    .venv/bin/python bench/report_bench.py [--db chdb:///path/to/store] [--rounds 3] [--out bench/report_bench.json]

Each round runs, in fresh processes and alternating, what `synthweb report` did to get the default detectors'
names, versions and calibrations before (`load_detector`: zeroshot's two language models and minilm, and
hashed) and what it does now (`describe_detector`: their manifests and calibrations). With --db it also times
the whole `synthweb report --by domain` on that store (e.g. one `synthweb run --sample-web --db ...` filled).
Wall seconds, best round, including the interpreter's start.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = (
    "from crawler.settings import SYNTHWEB_DETECTOR as s, SYNTHWEB_FAST_DETECTOR as f\n"
    "from detectors.runtime import {fn}\n"
    "for name in (s, f): d = {fn}(name); d.require_calibration()\n"
)
WAYS = {"load_detector (before)": "load_detector", "describe_detector (now)": "describe_detector"}


def seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a store to run `synthweb report --by domain` on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {name: [] for name in WAYS}
    report = [sys.executable, "-m", "synthweb.cli", "report", "--by", "domain", "--format", "json", "--db", args.db]
    if args.db:
        runs["synthweb report --by domain (now)"] = []
    for _ in range(args.rounds):
        for name, fn in WAYS.items():
            runs[name].append(seconds([sys.executable, "-c", CHILD.format(fn=fn)]))
        if args.db:
            runs["synthweb report --by domain (now)"].append(seconds(report))
    best = {name: round(min(values), 2) for name, values in runs.items()}
    result = {
        "seconds_best_round": best,
        "rounds": args.rounds,
        "ratio_load_over_describe": round(best["load_detector (before)"] / best["describe_detector (now)"], 1),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
