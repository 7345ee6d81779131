"""Load the Fast-DetectGPT corpus (human texts and their machine continuations).

Each `{domain}_{generator}.raw_data.json` holds pairs {"original": [...], "sampled": [...]}:
the machine text continues the first ~30 tokens of its human text. The human texts of
one article differ between generator files (each is truncated to its continuation's
length), so exact-text dedup alone would leave near-duplicates on both sides of a split.
Records are therefore grouped by the article's opening words: a human text and all its
continuations share a `group`, and splits are made by group.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SUBDIR = Path("data/detect/fast-detect-gpt")
DOMAINS = ("xsum", "squad", "writing")
GROUP_WORDS = 8  # prefix length that identifies an article (continuations start after ~30 tokens)

_FILE_RE = re.compile(r"^(xsum|squad|writing)_(.+)\.raw_data\.json$")


@dataclass(frozen=True)
class Record:
    text: str
    label: int  # 0 human, 1 machine
    domain: str
    generator: str  # "human" for human texts
    group: str


def data_dir() -> Path:
    """The corpus directory: $SYNTHWEB_SHARED/<subdir>, else ../shared/<subdir> from the repo."""
    shared = os.environ.get("SYNTHWEB_SHARED")
    base = Path(shared) if shared else REPO_ROOT.parent / "shared"
    return base / SUBDIR


def group_id(domain: str, text: str) -> str:
    prefix = " ".join(text.lower().split()[:GROUP_WORDS])
    return f"{domain}:{hashlib.sha1(prefix.encode()).hexdigest()[:12]}"


def load_records(path: str | Path | None = None) -> list[Record]:
    """All records, human texts deduplicated by exact text, in a deterministic order."""
    root = Path(path) if path else data_dir()
    files = sorted(root.glob("*/*.raw_data.json"))
    if not files:
        raise FileNotFoundError(
            f"detector corpus not found under {root} (expected */{{domain}}_{{generator}}.raw_data.json); "
            "set SYNTHWEB_SHARED to the directory holding data/detect/fast-detect-gpt"
        )
    records: list[Record] = []
    seen_human: set[str] = set()
    for file in files:
        m = _FILE_RE.match(file.name)
        if not m:
            continue
        domain, generator = m.groups()
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
        for human, machine in zip(data["original"], data["sampled"], strict=True):
            # The pair's group comes from the human text so both sides land together.
            group = group_id(domain, human)
            if human.strip() and human not in seen_human:
                seen_human.add(human)
                records.append(Record(human, 0, domain, "human", group))
            if machine.strip():
                records.append(Record(machine, 1, domain, generator, group))
    return records


def split_groups(records: list[Record], holdout: float = 0.2, salt: str = "calib") -> tuple[set, set]:
    """Deterministic group split (by hash, so it does not depend on record order)."""
    groups = sorted({r.group for r in records})

    def frac(g: str) -> float:
        return int(hashlib.sha1(f"{salt}:{g}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    held = {g for g in groups if frac(g) < holdout}
    return set(groups) - held, held
