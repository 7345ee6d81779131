"""Throughput of the minilm encoder variants: documents per second at batch 32, CPU (or GPU if present).

python bench/encoder_bench.py [--docs 128] [--tokens 128 256 512] [--providers CPUExecutionProvider]

Needs the variants built: python -m detectors.encoder build --variant all. 400-word documents, so
every text fills the token window; ONNX Runtime with 2 intra-op threads as the runtime uses.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.detectors_bench import WORDS  # noqa: E402
from detectors.encoder import DEFAULT_OUT, VARIANT_FILES, embed, load_tokenizer  # noqa: E402


def main() -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=128)
    ap.add_argument("--tokens", type=int, nargs="+", default=[128])
    ap.add_argument("--variants", nargs="+", default=list(VARIANT_FILES))
    ap.add_argument("--providers", default="CPUExecutionProvider")
    args = ap.parse_args()
    rnd = random.Random(0)
    docs = [" ".join(rnd.choice(WORDS) for _ in range(400)) for _ in range(args.docs)]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    print(f"{args.docs} docs of 400 words, batch 32, {args.providers}\n")
    print("| variant | max tokens | docs/s |\n|---|---|---|")
    for variant in args.variants:
        path = DEFAULT_OUT / VARIANT_FILES[variant]
        if not path.is_file():
            print(f"| {variant} | | not built |")
            continue
        sess = ort.InferenceSession(str(path), opts, providers=args.providers.split(","))
        for tokens in args.tokens:
            tok = load_tokenizer(DEFAULT_OUT / "tokenizer.json", tokens)
            embed(sess, tok, docs[:32], "layer_means", 32)  # warm-up
            t = time.perf_counter()
            embed(sess, tok, docs, "layer_means", 32)
            print(f"| {variant} | {tokens} | {args.docs / (time.perf_counter() - t):.1f} |", flush=True)


if __name__ == "__main__":
    main()
