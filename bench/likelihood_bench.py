"""Scoring speed of zero-shot likelihood detectors over random GPT-2-shaped models (no downloads).

python bench/likelihood_bench.py [--shape tiny|gpt2-small] [--docs 32] [--max-tokens 256] [--binoculars]

Prints docs/s by batch size, then the same texts scored two ways side by side: per-token statistics
computed by the ONNX statistics graph where the logits are (the shipped path) against the logits
copied to the host and reduced in numpy (the path before), with the largest difference in raw score.

Random weights: speed depends on the shapes, not on the values, so a random GPT-2-small stands in
for the real one. The tiny byte-level BPE tokenizer only yields ids < 300; the logits still span
the model's full vocabulary. Quality numbers need real LMs, which this bench does not have.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "detectors")]
os.environ.setdefault("SYNTHWEB_ORT_PROVIDERS", "CPUExecutionProvider")

import numpy as np  # noqa: E402
from tiny_lm import train_tokenizer, write_gpt2_checkpoint  # noqa: E402

from detectors.export import export_checkpoint  # noqa: E402
from detectors.likelihood import pad_rows  # noqa: E402
from detectors.runtime import load_detector  # noqa: E402
from detectors.token_stats import numpy_token_stats, reduce_token_stats  # noqa: E402

SHAPES = {"tiny": dict(n_embd=32, n_layer=2, n_head=4), "gpt2-small": dict(n_embd=768, n_layer=12, n_head=12)}
WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "research climate market policy people system data model language city river history music"
).split()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=SHAPES, default="tiny")
    ap.add_argument("--docs", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--binoculars", action="store_true", help="two models (the second with another seed)")
    args = ap.parse_args()
    tok = train_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        shape = SHAPES[args.shape] | ({"vocab_size": 50257, "n_positions": 1024} if args.shape != "tiny" else {})
        t0 = time.perf_counter()
        ckpts = []
        for seed in (0, 1) if args.binoculars else (0,):
            ckpt = write_gpt2_checkpoint(base / f"ckpt{seed}", tok, seed=seed, **SHAPES[args.shape])
            if args.shape != "tiny":  # full GPT-2 vocabulary and context: rewrite with the real sizes
                _resize(ckpt, shape, seed)
            ckpts.append(ckpt)
        performer = ckpts[1] if args.binoculars else None
        det_dir = export_checkpoint(ckpts[0], base / "det", performer=performer, max_tokens=args.max_tokens)
        print(f"built and exported in {time.perf_counter() - t0:.1f}s")
        det = load_detector(str(det_dir))
        rnd = random.Random(0)
        docs = [" ".join(rnd.choice(WORDS) for _ in range(400)) for _ in range(args.docs)]
        n_tokens = sum(len(ids) for ids in det.scorer.token_ids(docs))
        det.score(docs[:2], batch_size=2)  # warm-up
        print(f"{det!r}, {args.shape}, {args.docs} docs of 400 words, {n_tokens / args.docs:.0f} tokens each\n")
        print("| batch size | docs/s | tokens/s |\n|---|---|---|")
        for bs in (1, 8, 32):
            t = time.perf_counter()
            det.score(docs, batch_size=bs)
            dt = time.perf_counter() - t
            print(f"| {bs} | {args.docs / dt:.1f} | {n_tokens / dt:.0f} |")
        compare(det.scorer, docs, batch_size=8)


def host_raw_scores(scorer, texts: list[str], batch_size: int) -> np.ndarray:
    """Raw scores with the logits fetched to host memory and reduced in numpy (the path before the graph)."""
    ids = scorer.token_ids(texts)
    out = np.full(len(texts), np.nan)
    for start in range(0, len(ids), batch_size):
        rows = ids[start : start + batch_size]
        tok, mask = pad_rows(rows)
        logits = [
            lm.logits(tok, mask).numpy() for lm in {id(m): m for m in (scorer.observer, scorer.performer)}.values()
        ]
        performer = logits[1] if len(logits) == 2 else None
        stats = numpy_token_stats(scorer.method, logits[0], performer, tok)
        out[start : start + len(rows)] = reduce_token_stats(scorer.method, stats, mask)
    return out


def compare(scorer, docs: list[str], batch_size: int, rounds: int = 3) -> None:
    """Alternate the two paths `rounds` times on the same texts (the machine is shared: best of each)."""
    times = {"statistics graph": [], "host numpy": []}
    for _ in range(rounds):
        t = time.perf_counter()
        graph = scorer.raw_scores(docs, batch_size=batch_size)
        times["statistics graph"].append(time.perf_counter() - t)
        t = time.perf_counter()
        host = host_raw_scores(scorer, docs, batch_size)
        times["host numpy"].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    print(f"\n| batch {batch_size}, best of {rounds} | seconds | docs/s |\n|---|---|---|")
    for name, dt in best.items():
        print(f"| {name} | {dt:.2f} | {len(docs) / dt:.1f} |")
    ratio = best["host numpy"] / best["statistics graph"]
    print(f"graph / host speed: {ratio:.2f}x; max |raw score difference| {np.nanmax(np.abs(graph - host)):.2e}")


def _resize(ckpt: Path, shape: dict, seed: int) -> None:
    import json

    from safetensors.numpy import save_file
    from tiny_lm import random_gpt2_weights

    config = json.loads((ckpt / "config.json").read_text()) | shape
    (ckpt / "config.json").write_text(json.dumps(config))
    save_file(random_gpt2_weights(config, seed), str(ckpt / "model.safetensors"))


if __name__ == "__main__":
    main()
