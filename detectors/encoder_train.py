"""Train and evaluate the MiniLM detector's head, and the ensemble, on cached embeddings.

    python -m detectors.encoder_train embed [--variant fp32]   # embed the corpus once (resumable cache)
    python -m detectors.encoder_train train                    # held-out eval + ship head.json, calibration

Embedding the ~14k corpus texts takes tens of minutes on two cores, so `embed` caches the
per-layer mean-pooled states in detectors/.cache/ (gitignored) and everything else reuses them:
the logistic-regression head is cheap to refit per held-out split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from detectors.data import Record, load_records, split_groups
from detectors.encoder import DEFAULT_OUT, VARIANT_FILES, embed, load_tokenizer
from detectors.runtime import preprocess

CACHE = Path(__file__).resolve().parent / ".cache"
CHUNK = 256


def corpus_key(records: list[Record], max_tokens: int, variant: str) -> str:
    h = hashlib.sha1()
    for r in records:
        h.update(r.text.encode())
    return f"minilm-{variant}-{max_tokens}-{h.hexdigest()[:10]}"


def embed_corpus(records: list[Record], variant: str = "fp32", max_tokens: int = 128, model_dir=DEFAULT_OUT):
    """Layer means [N, L, H] (float16 on disk) for every record, computed in resumable chunks."""
    import onnxruntime as ort

    CACHE.mkdir(exist_ok=True)
    key = corpus_key(records, max_tokens, variant)
    final = CACHE / f"{key}.npy"
    if final.is_file():
        return np.load(final)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(model_dir / VARIANT_FILES[variant]), opts, providers=["CPUExecutionProvider"])
    tok = load_tokenizer(model_dir / "tokenizer.json", max_tokens)
    texts = [preprocess(r.text, ("collapse_whitespace",)) for r in records]
    parts = []
    t0 = time.time()
    for i, start in enumerate(range(0, len(texts), CHUNK)):
        part = CACHE / f"{key}.part{i:04d}.npy"
        if not part.is_file():
            np.save(part, embed(sess, tok, texts[start : start + CHUNK], "layer_means", 32).astype(np.float16))
            done = start + CHUNK
            print(f"{min(done, len(texts))}/{len(texts)} {done / (time.time() - t0):.1f} docs/s", flush=True)
        parts.append(part)
    result = np.concatenate([np.load(p) for p in parts])
    np.save(final, result)
    for p in parts:
        p.unlink()
    return result


def split_indices(records: list[Record]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """detectors.train's held-out splits (whole domains / whole generators) as index arrays."""
    from detectors.train import heldout_splits

    pos = {id(r): i for i, r in enumerate(records)}
    return [
        (name, np.array([pos[id(r)] for r in train]), np.array([pos[id(r)] for r in test]))
        for name, train, test in heldout_splits(records)
    ]


def stack_split(records: list[Record], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Members' part (75% of groups) and the combiner's part (the other 25%) of a training set."""
    member_groups, _ = split_groups([records[i] for i in idx], holdout=0.25, salt="stack")
    in_members = np.array([records[i].group in member_groups for i in idx])
    return idx[in_members], idx[~in_members]


def lexical_stack_scores(records: list[Record]) -> dict:
    """Per held-out split: lexical (char14) fit on the members' part, scores on the combiner part and test."""
    from detectors.train import _fit, _score

    path = CACHE / f"lexical-stack-{corpus_key(records, 0, 'char14')}.json"
    if path.is_file():
        return json.loads(path.read_text())
    out = {}
    for name, train, test in split_indices(records):
        t = time.time()
        members, combiner = stack_split(records, train)
        pipe = _fit("char14", [records[i] for i in members])
        out[name] = {
            "combiner": _score(pipe, [records[i] for i in combiner]).round(6).tolist(),
            "test": _score(pipe, [records[i] for i in test]).round(6).tolist(),
        }
        print(f"lexical {name}: {time.time() - t:.0f}s", flush=True)
    CACHE.mkdir(exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("embed")
    e.add_argument("--variant", choices=list(VARIANT_FILES), default="fp32")
    e.add_argument("--max-tokens", type=int, default=128)
    sub.add_parser("lexical-stack", help="cache lexical scores for the held-out ensemble evaluation")
    args = ap.parse_args(argv)
    if args.command == "lexical-stack":
        lexical_stack_scores(load_records())
    if args.command == "embed":
        records = load_records()
        out = embed_corpus(records, args.variant, args.max_tokens)
        print(out.shape)


if __name__ == "__main__":
    main()
