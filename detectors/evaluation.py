"""Detector evaluation: metrics by slice, the held-out evaluation set, and the CI floors.

    python -m detectors.evaluation --write-eval FILE.jsonl     # the held-out set as JSON lines
    python -m detectors.evaluation --measure lexical            # print measured metrics and floors

The held-out set is the calibration split of the shared corpus (article groups that
detectors/train.py never trains on: `split_groups(holdout=0.2, salt="calib")`), built at run time
from ../shared so no copy of the data is committed. detectors/floors.json records, per detector
version, floors slightly below the measured AUROC and TPR@5%FPR per slice; tests/detectors/
test_gate.py fails when a shipped detector drops below them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from detectors.metrics import score_metrics

FLOORS = Path(__file__).resolve().parent / "floors.json"
LABELS = {"human": 0, "machine": 1, 0: 0, 1: 1, "0": 0, "1": 1}
LENGTH_BUCKETS = ((0, 100, "<100"), (100, 250, "100-250"), (250, None, "250+"))
FLOOR_MARGIN = 0.02  # floors sit this far below the measured value: room for float noise, none for a regression
GATED_METRICS = ("auroc", "tpr@5%fpr")


def parse_label(value) -> int:
    """0 for human, 1 for machine; ValueError otherwise."""
    key = value.strip().lower() if isinstance(value, str) else value
    if key not in LABELS or isinstance(key, bool):
        raise ValueError(f"label must be 'human' or 'machine', not {value!r}")
    return LABELS[key]


def read_labelled(path: str | Path) -> list[dict]:
    """The records of a labelled JSON-lines file ("-": stdin): each a JSON object with a string `text` and a
    `label` (human|machine, any case, or 0|1), turned into 0|1; other fields (domain, generator) are kept.

    The one reader of labelled data (`synthweb detectors eval`, `synthweb detectors calibrate`); a bad line,
    or a file without both labels, is a DetectorError naming the file (and line).
    """
    from detectors.jsonl import read_jsonl
    from detectors.runtime import DetectorError

    records = []
    for number, record in read_jsonl(path):
        try:
            record["label"] = parse_label(record.get("label"))
        except ValueError as exc:
            raise DetectorError(f"{path}:{number}: {exc}") from exc
        records.append(record)
    if {r["label"] for r in records} != {0, 1}:
        raise DetectorError(f"{path}: need both human and machine texts, found {len(records)} records of one label")
    return records


def length_bucket(text: str) -> str:
    words = len(text.split())
    return next(name for low, high, name in LENGTH_BUCKETS if words >= low and (high is None or words < high))


def _metrics(name: str, labels: np.ndarray, scores: np.ndarray) -> dict:
    row = {"slice": name, "n_human": int((labels == 0).sum()), "n_machine": int((labels == 1).sum())}
    return row | score_metrics(labels, scores)


def evaluate(records: list[dict], scores) -> list[dict]:
    """Metrics overall, by domain, by generator and by length bucket.

    `records` have `label` (0/1), `text`, optional `domain` and `generator`. A generator's slice is
    its machine texts against the human texts of the domains it appears in; a domain's or a length
    bucket's slice holds both classes inside it.
    """
    labels = np.array([r["label"] for r in records], dtype=int)
    scores = np.asarray(scores, dtype=float)
    domains = np.array([r.get("domain") or "" for r in records], dtype=object)
    generators = np.array([r.get("generator") or "" for r in records], dtype=object)
    buckets = np.array([length_bucket(r["text"]) for r in records], dtype=object)
    rows = [_metrics("all", labels, scores)]
    for domain in sorted(set(domains) - {""}):
        sel = domains == domain
        rows.append(_metrics(f"domain={domain}", labels[sel], scores[sel]))
    for generator in sorted(set(generators[labels == 1]) - {""}):
        machine = (labels == 1) & (generators == generator)
        seen = set(domains[machine]) - {""}
        human = (labels == 0) & (np.isin(domains, list(seen)) if seen else True)
        sel = machine | human
        rows.append(_metrics(f"generator={generator}", labels[sel], scores[sel]))
    for _, _, name in LENGTH_BUCKETS:
        sel = buckets == name
        if sel.any():
            rows.append(_metrics(f"length={name}", labels[sel], scores[sel]))
    return rows


def heldout_records(max_per_label: int | None = None) -> list[dict]:
    """The held-out evaluation set from the shared corpus (needs ../shared or $SYNTHWEB_SHARED).

    `max_per_label` keeps a deterministic subset (by text hash) for slow detectors.
    """
    from detectors.data import load_records, split_groups

    records = load_records()
    _, held = split_groups(records, holdout=0.2, salt="calib")
    out = [
        {"text": r.text, "label": r.label, "domain": r.domain, "generator": "" if r.label == 0 else r.generator}
        for r in records
        if r.group in held
    ]
    if max_per_label:
        out.sort(key=lambda r: hashlib.sha1(r["text"].encode()).hexdigest())
        kept = [[r for r in out if r["label"] == label][:max_per_label] for label in (0, 1)]
        out = kept[0] + kept[1]
    return out


def load_floors(path: Path = FLOORS) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def below_floors(rows: list[dict], floors: dict[str, dict[str, float]]) -> list[str]:
    """Human-readable failures: slices whose metric fell below its floor (or went missing)."""
    by_slice = {r["slice"]: r for r in rows}
    failures = []
    for name, metric_floors in floors.items():
        row = by_slice.get(name)
        for metric, floor in metric_floors.items():
            value = row.get(metric) if row else None
            if value is None or value < floor:
                failures.append(f"{name}: {metric} {value} < floor {floor}")
    return failures


def measured_floors(rows: list[dict], margin: float = FLOOR_MARGIN) -> dict[str, dict[str, float]]:
    """Floors `margin` below each measured gated metric (never below 0)."""
    return {
        r["slice"]: {m: round(max(0.0, r[m] - margin), 3) for m in GATED_METRICS if r.get(m) is not None} for r in rows
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-eval", type=Path, metavar="FILE.jsonl", help="write the held-out set")
    ap.add_argument("--measure", metavar="DETECTOR", help="evaluate a detector and print floors for floors.json")
    ap.add_argument("--max-per-label", type=int, default=None)
    args = ap.parse_args(argv)
    records = heldout_records(args.max_per_label)
    if args.write_eval:
        with open(args.write_eval, "w", encoding="utf-8") as fh:
            for r in records:
                label = "machine" if r["label"] else "human"
                fh.write(json.dumps({**r, "label": label}, ensure_ascii=False) + "\n")
        print(f"wrote {len(records)} records to {args.write_eval}")
    if args.measure:
        from detectors.runtime import load_detector

        detector = load_detector(args.measure)
        rows = evaluate(records, detector.score([r["text"] for r in records]))
        entry = {"version": detector.version, "max_per_label": args.max_per_label, "floors": measured_floors(rows)}
        print(json.dumps({"measured": rows, detector.name: entry}, indent=1))


if __name__ == "__main__":
    main()
