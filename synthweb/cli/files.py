"""Commands on JSON-lines files of texts: `score` (P(synthetic) per line) and `estimate` (the share of a file)."""

from __future__ import annotations

import argparse
import json
import sys

from synthweb.cli.common import (
    CliError,
    chunks,
    detector_option,
    load_detector,
    method_option,
    read_jsonl,
    settings_for,
)


def register(sub) -> None:
    score = sub.add_parser("score", help="add p_synthetic to each JSON line with a text")
    score.add_argument("file", metavar="FILE.jsonl|-")
    detector_option(score)
    score.set_defaults(run=cmd_score)

    estimate = sub.add_parser("estimate", help="machine-written share of the texts in a JSON-lines file")
    estimate.add_argument("file", metavar="FILE.jsonl|-")
    method_option(estimate)
    detector_option(estimate)
    estimate.set_defaults(run=cmd_estimate)


def cmd_score(args: argparse.Namespace) -> int:
    detector = load_detector(settings_for(args))
    for chunk in chunks(read_jsonl(args.file), 256):
        scores = detector.score([record["text"] for _, record in chunk])
        for (_, record), score in zip(chunk, scores, strict=True):
            record["p_synthetic"] = round(float(score), 6)
            print(json.dumps(record, ensure_ascii=False))
        sys.stdout.flush()
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from synthweb.estimate import Calibration, estimate_scores

    detector = load_detector(settings_for(args))
    try:  # before scoring: an uncalibrated detector gives no share
        calibration = Calibration.from_dict(detector.require_calibration())
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    scores, excluded = [], 0
    for chunk in chunks(read_jsonl(args.file), 256):
        texts = [record["text"] for _, record in chunk]
        kept = [t for t in texts if len(t.split()) >= detector.min_words]
        excluded += len(texts) - len(kept)
        if kept:
            scores.extend(detector.score(kept))
    estimate = estimate_scores(scores, calibration, method=args.method)
    print(json.dumps({**estimate.to_dict(), "excluded": excluded, "min_words": detector.min_words}))
    return 0
