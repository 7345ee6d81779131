"""Regenerate synthweb/sample_texts.jsonl, the texts the local sample web serves.

Source: the Fast-DetectGPT experiment data (https://github.com/baoguangsheng/fast-detect-gpt),
MIT License, Copyright (c) 2023 Bao Guangsheng; see synthweb/SAMPLE_TEXTS_LICENSE.
Human texts are XSum news and WritingPrompts stories ("original"); machine texts are
GPT-3.5-turbo, GPT-4 and davinci continuations of other originals ("sampled").
Deterministic: fixed indices, no randomness.

    python -m synthweb.make_sample_texts [/path/to/fast-detect-gpt/exp_gpt3to4]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DEFAULT_SOURCE = Path("/work/shared/data/detect/fast-detect-gpt/exp_gpt3to4")
OUT = Path(__file__).with_name("sample_texts.jsonl")
DATASETS = ("xsum", "writing")
MODELS = ("gpt-3.5-turbo", "gpt-4", "davinci")
HUMAN_PER_DATASET = 15
MACHINE_PER_FILE = 5


def _clean(text: str) -> str:
    text = re.sub(r"^\s*\[\s*\w+\s*\]\s*", "", text)  # WritingPrompts tags like "[ WP ]"
    return text.replace("\r", "").strip()


def build(source: Path) -> list[dict]:
    records = []
    for dataset in DATASETS:
        data = json.loads((source / f"{dataset}_gpt-4.raw_data.json").read_text())
        for i in range(HUMAN_PER_DATASET):
            records.append(
                {
                    "id": f"{dataset}-human-{i}",
                    "kind": "human",
                    "model": "human",
                    "dataset": dataset,
                    "text": _clean(data["original"][i]),
                }
            )
    for dataset in DATASETS:
        for m, model in enumerate(MODELS):
            data = json.loads((source / f"{dataset}_{model}.raw_data.json").read_text())
            # Each model continues different originals than the human texts and each other.
            start = HUMAN_PER_DATASET + m * MACHINE_PER_FILE
            for i in range(start, start + MACHINE_PER_FILE):
                records.append(
                    {
                        "id": f"{dataset}-{model}-{i}",
                        "kind": "machine",
                        "model": model,
                        "dataset": dataset,
                        "text": _clean(data["sampled"][i]),
                    }
                )
    return records


def main(argv: list[str]) -> None:
    source = Path(argv[0]) if argv else DEFAULT_SOURCE
    records = build(source)
    with OUT.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {len(records)} texts, {OUT.stat().st_size} bytes to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
