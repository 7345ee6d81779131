"""Throughput of a detector on CPU: documents per second at batch sizes 1, 64 and 256.

python bench/detectors_bench.py [--detector lexical] [--docs 1024]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SYNTHWEB_ORT_PROVIDERS", "CPUExecutionProvider")

from detectors.runtime import load_detector  # noqa: E402

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "research climate market policy people system data model language city river history music"
).split()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--detector", default="lexical")
    ap.add_argument("--docs", type=int, default=1024)
    ap.add_argument("--words", type=int, default=400, help="words per synthetic document")
    args = ap.parse_args()
    det = load_detector(args.detector)
    import random

    rnd = random.Random(0)
    docs = [" ".join(rnd.choice(WORDS) for _ in range(args.words)) for _ in range(args.docs)]
    det.score(docs[:64])  # warm-up
    print(f"{det!r}, {args.docs} docs of {args.words} words\n")
    print("| batch size | docs/s | ms/doc |\n|---|---|---|")
    for bs in (1, 64, 256):
        n = min(args.docs, 256) if bs == 1 else args.docs  # batch size 1 is slow; time fewer docs
        t = time.perf_counter()
        det.score(docs[:n], batch_size=bs)
        dt = time.perf_counter() - t
        print(f"| {bs} | {n / dt:,.0f} | {1000 * dt / n:.2f} |")


if __name__ == "__main__":
    main()
