"""Main-text extraction measured: trafilatura (what ExtractStage runs) against resiliparse and selectolax.

Pages: human texts of the shared corpus (../shared/data/detect), each wrapped in the furniture of a news or blog
page (navigation, a cookie banner, "related stories", an advert and a "read more" line inside the article,
comments, a footer of links), half in <article>, half in an anonymous <div>. Quality: word-level precision,
recall and F1 of the extracted text against the article's own words (multisets). Speed: CPU ms per page, side by
side in one run (alternating rounds, best round; the machine is shared).

    .venv/bin/pip install --no-deps resiliparse==2.0.1 fastwarc==2.0.1 selectolax==1.0.2   # the bench only
    .venv/bin/python bench/extract_bench.py [--pages 300] [--out bench/extract_bench.json]
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.data import load_records  # noqa: E402

_WORD = re.compile(r"\w+", re.UNICODE)


SCRIPT = (
    "<script>window.__DATA__ = "
    + json.dumps({"items": [{"id": i, "tag": "x" * 40} for i in range(900)]})
    + ";</script><style>"
    + ".c{margin:0;padding:0} " * 400
    + "</style>"
)  # the weight of a real page: ~60 kB


def page_html(text: str, others: list[str], rng: random.Random) -> str:
    def title(t: str) -> str:
        return html.escape(" ".join(t.split()[:8]))

    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    paragraphs = [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]
    body = [f"<p>{html.escape(p)}</p>" for p in paragraphs]
    body.insert(len(body) // 2, f'<div class="ad">Advertisement</div><p class="readmore">Read more: <a href="/x">'
                f"{title(others[0])}</a></p>")  # fmt: skip
    sections = ["Home", "News", "World", "Business", "Sport", "Culture", "Opinion", "Weather", "Video", "Contact"]
    nav = "".join(f'<li><a href="/s{i}">{w}</a></li>' for i, w in enumerate(sections))
    related = "".join(f'<li><a href="/r{i}">{title(o)}</a></li>' for i, o in enumerate(others[1:9]))
    comments = "".join(f'<div class="comment"><b>reader{i}</b><p>{html.escape(" ".join(o.split()[:25]))}</p></div>'
                       for i, o in enumerate(others[9:12]))  # fmt: skip
    links = ["About us", "Careers", "Privacy policy", "Cookie settings", "Terms of use", "Advertise", "Newsletters"]
    footer = " | ".join(f'<a href="/f{i}">{w}</a>' for i, w in enumerate(links))
    container = "article" if rng.random() < 0.5 else 'div class="c' + str(rng.randrange(99)) + '"'
    close = container.split()[0]
    return (
        f"<!doctype html><html><head><title>{title(text)}</title>{SCRIPT}</head><body>"
        f'<header><div class="cookie">We use cookies to improve your experience. Accept all cookies or manage '
        f"your settings.</div><nav><ul>{nav}</ul></nav></header>"
        f"<main><{container}><h1>{title(text)}</h1>{''.join(body)}</{close}>"
        f"<aside><h2>Related stories</h2><ul>{related}</ul></aside>"
        f'<section class="comments"><h2>Comments</h2>{comments}</section></main>'
        f"<footer><p>{footer}</p><p>Copyright 2026 Example Media. All rights reserved.</p></footer></body></html>"
    )


def with_trafilatura(page: str) -> str:
    from trafilatura import bare_extraction
    from trafilatura.utils import load_html

    doc = bare_extraction(
        load_html(page),
        fast=True,
        favor_precision=True,
        include_comments=False,
        include_tables=False,
        with_metadata=False,
    )  # fmt: skip (ExtractStage's call)
    return getattr(doc, "text", None) or ""


def with_resiliparse(page: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(page), main_content=True)


def with_selectolax(page: str) -> str:
    """The naive peer: every <p> outside header, nav, aside, footer and comments."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(page)
    for node in tree.css("header, nav, aside, footer, section.comments, script, style"):
        node.decompose()
    return "\n".join(p.text() for p in tree.css("p"))


EXTRACTORS = {"trafilatura": with_trafilatura, "resiliparse": with_resiliparse, "selectolax <p>": with_selectolax}


def scores(extracted: str, truth: str) -> tuple[float, float]:
    got, want = Counter(_WORD.findall(extracted.lower())), Counter(_WORD.findall(truth.lower()))
    hit = sum((got & want).values())
    return (hit / sum(got.values()) if got else 0.0), hit / sum(want.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rng = random.Random(3)
    humans = sorted({r.text for r in load_records() if r.label == 0})
    rng.shuffle(humans)
    texts = humans[: args.pages]
    pages = [page_html(t, rng.sample(humans, 12), rng) for t in texts]
    result = {"pages": len(pages), "mean_html_bytes": round(sum(map(len, pages)) / len(pages)), "extractors": {}}
    best: dict[str, float] = {}
    for _ in range(3):
        for name, fn in EXTRACTORS.items():
            start = time.process_time()
            outs = [fn(p) for p in pages]
            best[name] = min(best.get(name, 1e9), time.process_time() - start)
            pr = [scores(o, t) for o, t in zip(outs, texts, strict=True)]
            precision = sum(p for p, _ in pr) / len(pr)
            recall = sum(r for _, r in pr) / len(pr)
            result["extractors"][name] = {
                "precision": round(precision, 3),
                "recall": round(recall, 3),
                "f1": round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0,
                "empty": sum(1 for o in outs if not o.strip()),
            }
    for name, seconds in best.items():
        result["extractors"][name]["cpu_ms_per_page"] = round(1000 * seconds / len(pages), 2)
    base = result["extractors"]["trafilatura"]["cpu_ms_per_page"]
    for entry in result["extractors"].values():
        entry["speed_vs_trafilatura"] = round(base / entry["cpu_ms_per_page"], 2)
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
