"""Soak: a steady stream of pages through Kafka -> Faust -> ClickHouse (chDB) with the fast detector, for a long time.

    .venv/bin/python bench/soak_bench.py [--pages 100000] [--rate 120] [--partitions 3] [--out FILE]

A load generator publishes synthetic pages (stream/samples.py: real article HTML from the sample texts, each page
distinct) to a real KRaft broker at `--rate` pages/s in one-second chunks, while one `faust -A stream.app worker`
consumes them with `hashed` alone. Every 5 s it samples the worker's resident memory (/proc), its consumer lag
and its stored count (/metrics). At the end the store must hold every page exactly once.

Prints one JSON object: pages/s, lag (max, end), memory (after a 64-page warm-up, peak, end, and the curve).
The soak itself is tests/support/soak.py (the slow test runs 2,000 pages of it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def main() -> int:
    from tests.support.soak import soak

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=120.0, help="pages/s offered (default 120)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synthweb-soak-") as tmp:
        result = soak(args.pages, args.rate, args.partitions, Path(tmp))
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0 if result["exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
