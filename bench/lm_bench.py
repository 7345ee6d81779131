"""CPU docs/s of the zero-shot LM detectors against PyTorch + transformers on the same GGUF weights.

    python bench/lm_bench.py [--detector smollm2] [--texts 24] [--rounds 3] [--threads 2]
                             [--peer-python /path/to/venv-with-torch/bin/python]

synthweb: `load_detector(NAME).score(texts)` (ONNX Runtime, statistics graph beside the logits). The peer
is what a user would otherwise run: transformers loads the same GGUF file (`from_pretrained(gguf_file=...)`,
dequantized to float32) and the same per-token statistics are computed from its logits in torch, as the
reference Fast-DetectGPT / Binoculars code does. Both read the same texts cut to the same 256 tokens with the
same number of threads, in alternating rounds (best round counts: the machine is shared). torch is never a
dependency of synthweb: install it (with transformers and gguf) into a separate virtualenv for this bench.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PEER = r"""
import json, sys, time, torch
from transformers import AutoModelForCausalLM
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
model = AutoModelForCausalLM.from_pretrained(args["dir"], gguf_file=args["file"], dtype=torch.float32).eval()
best = None
for _ in range(args["rounds"]):
    start = time.perf_counter()
    with torch.inference_mode():
        for ids in args["ids"]:
            x = torch.tensor([ids])
            lp = torch.log_softmax(model(x).logits[0, :-1].float(), -1)
            tgt = x[0, 1:, None]
            ll = lp.gather(-1, tgt)[:, 0]
            p = lp.exp()
            ent = -(p * lp).sum(-1)
            second = (p * lp * lp).sum(-1)
            rank = (lp > ll[:, None]).sum(-1)
            fdg = (ll.sum() + ent.sum()) / (second - ent**2).sum().sqrt()
            feats = [ll.mean(), ent.mean(), torch.log1p(rank.float()).mean(), fdg]
    t = time.perf_counter() - start
    best = t if best is None else min(best, t)
    print(json.dumps({"round_s": t}), flush=True)
print(json.dumps({"best_s": best}))
"""


def corpus_texts(n: int) -> list[str]:
    from detectors.evaluation import heldout_records

    return [r["text"] for r in heldout_records(max_per_label=n // 2)][:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--detector", default="smollm2")
    ap.add_argument("--texts", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON"))
    args = ap.parse_args()
    os.environ.setdefault("SYNTHWEB_ORT_PROVIDERS", "CPUExecutionProvider")
    from detectors.lm_build import MODELS
    from detectors.runtime import load_detector, preprocess

    detector = load_detector(args.detector)
    lm = detector.scorer.models[0]
    texts = [preprocess(t, detector.preprocess) for t in corpus_texts(args.texts)]
    ids = lm.token_ids(texts)
    gguf_path = MODELS[lm.name]["gguf"]()
    result = {"detector": f"{detector.name} v{detector.version}", "texts": len(texts), "threads": args.threads,
              "mean_tokens": round(sum(map(len, ids)) / len(ids), 1), "rounds": []}  # fmt: skip
    peer = None
    if args.peer_python:
        peer_args = {
            "dir": str(gguf_path.parent),
            "file": gguf_path.name,
            "ids": ids,
            "threads": args.threads,
            "rounds": 1,
        }
    for _ in range(args.rounds):
        start = time.perf_counter()
        detector.score(texts)
        ours = time.perf_counter() - start
        row = {"synthweb_docs_s": round(len(texts) / ours, 2)}
        if args.peer_python:
            out = subprocess.run([args.peer_python, "-c", PEER, json.dumps(peer_args)], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"peer failed: {out.stderr[-2000:]}")
            peer = json.loads(out.stdout.strip().splitlines()[-1])["best_s"]
            row["peer_docs_s"] = round(len(texts) / peer, 2)
            row["ratio"] = round(peer / ours, 2)
        result["rounds"].append(row)
        print(json.dumps(row), flush=True)
    best = {k: max(r[k] for r in result["rounds"]) for k in result["rounds"][0] if k.endswith("docs_s")}
    result["best"] = best | ({"ratio": round(best["synthweb_docs_s"] / best["peer_docs_s"], 2)} if peer else {})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
