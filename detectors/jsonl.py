"""The one reader of JSON-lines text files: `synthweb score` / `estimate` and the labelled-data commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from detectors.runtime import DetectorError


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) per non-blank line of a JSON-lines file or stdin ("-"); each needs a string `text`.

    Read line by line as bytes, so memory stays one line and an encoding error names its line; a bad line
    is a DetectorError naming the file and line.
    """
    stream: BinaryIO
    try:
        stream = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise DetectorError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with stream:
        for number, raw in enumerate(stream, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DetectorError(f"{path}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DetectorError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DetectorError(f"{path}:{number}: expected a JSON object with a string field 'text'")
            try:
                record["text"].encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate escape such as "\ud800"
                raise DetectorError(
                    f"{path}:{number}: text is not valid Unicode ({exc.reason} at {exc.start})"
                ) from exc
            yield number, record
