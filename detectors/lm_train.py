"""Evaluate the zero-shot LM statistics held-out, fit the small heads on them, and write the detectors.

    python -m detectors.lm_train stats [--set sample|calibration] [--model M] [--reading plain|chat]  # cached
    python -m detectors.lm_train train [--chat smollm2-135m]                   # held-out tables, heads, calibrations

A forward pass of a 135M-parameter LM costs ~0.45 s per 256-token text on two CPU cores, so training
works on a stratified sample of the corpus (`sample_records`: per domain and generator, training groups and
calibration groups apart) and caches each model's per-token statistics in detectors/.cache/lm/ (gitignored,
resumable, in chunks whose every finished prefix is a balanced sample). Prefix statistics of a causal LM
do not depend on what follows, so the cache also answers for any shorter `max_tokens`. The `calibration`
set is the rest of the calibration groups' texts: with the sample's share of them, the shipped detectors
are calibrated on all of them, as the other detectors are, and the mixtures bench draws from them.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from detectors.data import Record, load_records, split_groups
from detectors.runtime import preprocess

CACHE = Path(__file__).resolve().parent / ".cache" / "lm"
TABLES = Path(__file__).resolve().parent / "lm_tables"  # committed: per-text columns (`write_table`)
CHUNK = 64
MAX_TOKENS = 256
# The first tokens are predicted with little context: their likelihood says more about how a topic opens than
# about who wrote it. And in this corpus a machine text opens with its human prompt (~30 tokens), so those
# tokens teach the heads nothing about machine writing; on the web a machine text is machine from its first
# token, and skipping 32 of up to 256 costs little there. Measured on the sample (both models' head, v3
# features, held-out mean AUROC / TPR@1%FPR): 0.916 / 0.438 skipping 16, 0.926 / 0.541 skipping 32; 48 was worse
# in v2 (0.897 against 0.915 at 32).
SKIP_TOKENS = 32
# Texts per (domain, generator) stratum in the sample, from training / calibration groups; as many human
# texts per domain as machine texts there.
PER_STRATUM = {"train": 64, "calib": 16}


def _h(text: str) -> bytes:
    return hashlib.sha1(text.encode()).digest()


def sample_records(records: list[Record] | None = None) -> list[Record]:
    """The deterministic stratified sample, ordered so every prefix of chunks mixes all strata."""
    records = records if records is not None else load_records()
    train_groups, calib_groups = split_groups(records, holdout=0.2, salt="calib")
    chosen: list[Record] = []
    for part, groups in (("train", train_groups), ("calib", calib_groups)):
        mine = sorted((r for r in records if r.group in groups), key=lambda r: _h(r.text))
        quota: dict[tuple, int] = {}
        for r in mine:
            if r.label == 1:
                quota.setdefault((r.domain, r.generator), 0)
        for key in quota:
            quota[key] = PER_STRATUM[part]
        for d in {d for d, _ in quota}:
            quota[(d, "human")] = PER_STRATUM[part] * sum(1 for dd, _ in quota if dd == d)
        for r in mine:
            key = (r.domain, r.generator)
            if quota.get(key, 0) > 0:
                quota[key] -= 1
                chosen.append(r)
    return sorted(chosen, key=lambda r: _h(r.group + r.text))


def calibration_rest(records: list[Record] | None = None, sample: list[Record] | None = None) -> list[Record]:
    """The calibration groups' texts that are not in the sample, in hash order."""
    records = records if records is not None else load_records()
    sample = sample if sample is not None else sample_records(records)
    _, calib_groups = split_groups(records, holdout=0.2, salt="calib")
    taken = {(r.text, r.label, r.generator) for r in sample}
    rest = [r for r in records if r.group in calib_groups and (r.text, r.label, r.generator) not in taken]
    return sorted(rest, key=lambda r: _h(r.group + r.text))


def text_sets() -> dict[str, list[Record]]:
    records = load_records()
    sample = sample_records(records)
    return {"sample": sample, "calibration": calibration_rest(records, sample)}


def sample_key(sample: list[Record]) -> str:
    h = hashlib.sha1()
    for r in sample:
        h.update(_h(r.text))
    return h.hexdigest()[:10]


def _name(model: str, reading: str) -> str:
    """The cache folder and table name of a model's reading: "smollm2-135m", "smollm2-135m@chat"."""
    return model if reading == "plain" else f"{model}@{reading}"


def _chunk_file(model: str, key: str, chunk: int, reading: str = "plain") -> Path:
    return CACHE / _name(model, reading) / f"{key}-{MAX_TOKENS}-{chunk:04d}.npz"


def compute_stats(model: str, sample: list[Record], max_chunks: int | None = None, reading: str = "plain") -> None:
    """Cache per-token statistics of `model` on the sample, chunk by chunk (resumes where it stopped, after
    what the committed table covers). A chat reading's chunk brings its plain chunk too: contrasts need both."""
    from detectors.lm_build import MODELS, require_built
    from detectors.lm_features import LMStatistics
    from detectors.runtime import open_session

    key = sample_key(sample)
    template = MODELS[model].get("chat_template")
    lm = LMStatistics(model, require_built(model), open_session, MAX_TOKENS, chat_template=template)
    n_chunks = (len(sample) + CHUNK - 1) // CHUNK
    done = 0
    for c in range(_table_chunks(len(_table(model, sample, reading)), len(sample)), n_chunks):
        todo = [r for r in dict.fromkeys(["plain", reading]) if not _chunk_file(model, key, c, r).is_file()]
        if reading not in todo:
            continue
        if max_chunks is not None and done >= max_chunks:
            break
        start = time.monotonic()
        texts = [preprocess(r.text, ("collapse_whitespace",)) for r in sample[c * CHUNK : (c + 1) * CHUNK]]
        for r in todo:
            _save_chunk(_chunk_file(model, key, c, r), lm.token_stats(texts, batch_size=1, reading=r))
        done += 1
        took = time.monotonic() - start
        print(f"{model} ({'+'.join(todo)}) chunk {c + 1}/{n_chunks}: {took:.1f} s", file=sys.stderr, flush=True)


def _save_chunk(path: Path, stats: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(s) for s in stats])
    partial = path.with_suffix(".partial.npz")  # renamed when complete: an interrupted run leaves no half chunk
    np.savez_compressed(partial, lengths=lengths, stats=np.concatenate(stats).astype(np.float32))
    partial.replace(path)


def load_stats(model: str, sample: list[Record], reading: str = "plain", first: int = 0) -> tuple[int, list]:
    """(number of sample texts covered, their per-token statistics) from the finished run of chunks that
    starts at chunk `first`."""
    key = sample_key(sample)
    out: list[np.ndarray] = []
    for c in range(first, (len(sample) + CHUNK - 1) // CHUNK):
        path = _chunk_file(model, key, c, reading)
        if not path.is_file():
            break
        data = np.load(path)
        out += np.split(data["stats"], np.cumsum(data["lengths"])[:-1])
    return len(out), out


def _table_file(model: str, key: str, reading: str = "plain") -> Path:
    return TABLES / f"{_name(model, reading)}-{key}-{MAX_TOKENS}-skip{SKIP_TOKENS}.npz"


def _table(model: str, texts: list[Record], reading: str) -> np.ndarray:
    path = _table_file(model, sample_key(texts), reading)
    return np.load(path)["columns"].astype(np.float64) if path.is_file() else np.zeros((0, 0))


def _table_chunks(n_rows: int, n_texts: int) -> int:
    """How many chunks a table of `n_rows` covers (all of them where it covers every text)."""
    return (n_rows + CHUNK - 1) // CHUNK if n_rows >= n_texts else n_rows // CHUNK


def per_text_columns(stats: list[np.ndarray], chat: list[np.ndarray] | None = None) -> np.ndarray:
    """The heads' columns from per-token statistics: `FEATURE_NAMES`, or with `chat` the `CONTRAST_NAMES`."""
    from detectors.lm_features import features_from_stats
    from detectors.token_stats import contrast_features

    if chat is None:
        return features_from_stats(stats, skip=SKIP_TOKENS)
    return contrast_features(stats, chat, skip=SKIP_TOKENS)


def load_columns(model: str, texts: list[Record], reading: str = "plain") -> tuple[int, np.ndarray]:
    """(texts covered, their per-text columns): the committed table's rows (`write_table`), then those of the
    per-token cache's chunks that follow them."""
    saved = _table(model, texts, reading)
    first = _table_chunks(len(saved), len(texts))
    saved = saved[: first * CHUNK]
    n, stats = load_stats(model, texts, first=first)
    if reading == "plain":
        values = per_text_columns(stats)
    else:
        n_read, read = load_stats(model, texts, reading, first=first)
        n = min(n, n_read)
        values = per_text_columns(stats[:n], read[:n])
    values = np.concatenate([saved, values]) if len(saved) else values
    return len(values), values


def write_table(model: str, texts: list[Record], reading: str = "plain") -> Path:
    """Commit-sized per-text columns of what the per-token cache covers (a few hundred KB where the cache is
    tens of MB): heads can be refit and recalibrated from them without the hours of forward passes."""
    n, values = load_columns(model, texts, reading)
    if n < len(texts):
        n = n // CHUNK * CHUNK  # whole chunks: a later run resumes with the next one
    path = _table_file(model, sample_key(texts), reading)
    if not n:
        print(f"{path.relative_to(TABLES.parent)}: not written, no statistics cached", file=sys.stderr)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, columns=values[:n].astype(np.float32))
    print(f"{path.relative_to(TABLES.parent)}: {n} of {len(texts)} texts", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stats", help="cache per-token statistics of a model on the training sample")
    s.add_argument("--set", choices=["sample", "calibration"], default="sample")
    s.add_argument("--model", default="smollm2-135m")
    s.add_argument("--max-chunks", type=int, default=None)
    s.add_argument("--reading", choices=["plain", "chat"], default="plain", help="chat: as the model's chat answer")
    t = sub.add_parser("train", help="held-out tables, then write the heads and calibrations")
    t.add_argument("--chat", nargs="*", default=[], metavar="MODEL", help="add these models' chat contrasts")
    t.add_argument("--only", nargs="*", metavar="DETECTOR", help="write only these (and their own held-out file)")
    w = sub.add_parser("table", help="write the per-text columns the cache covers to detectors/lm_tables/")
    w.add_argument("--model", default="smollm2-135m")
    w.add_argument("--reading", choices=["plain", "chat"], default="plain")
    args = ap.parse_args(argv)
    sets = text_sets()
    if args.command == "stats":
        texts = sets[args.set]
        print(f"{args.set}: {len(texts)} texts, key {sample_key(texts)}", file=sys.stderr, flush=True)
        compute_stats(args.model, texts, args.max_chunks, args.reading)
    if args.command == "train":
        from detectors.lm_heads import HELDOUT_FILE, SHIPPED_DETECTORS, train

        chosen = {k: v for k, v in SHIPPED_DETECTORS.items() if not args.only or k in args.only}
        # the models these detectors read: another model's shorter cache must not cut their texts
        models = sorted({f.split(".")[0] for spec in chosen.values() for f in spec["features"]} - {"minilm"})
        own = HELDOUT_FILE.with_name(f"lm_eval_heldout.{'+'.join(args.only or [])}.json")
        heldout = own if args.only else HELDOUT_FILE
        train(sets["sample"], sets["calibration"], models, chosen, chat=args.chat, heldout_file=heldout)
    if args.command == "table":
        for name in ("sample", "calibration"):
            write_table(args.model, sets[name], args.reading)


if __name__ == "__main__":
    main()
