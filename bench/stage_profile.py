"""CPU per page of each step after fetching, in process, on the crawl bench's local web.

    python bench/stage_profile.py [--articles 200] [--rounds 3] [--out bench/stage_profile.json]

bench/crawl_cpu_bench.py measures the whole job against plain Scrapy + trafilatura; this says where the
difference goes. The pages of bench/crawl_cpu_bench.py's three sites are fetched once (urllib, loopback);
then, round by round on the same pages, each step's process CPU time is measured alone:
- the peer's own work: `trafilatura.extract(html)`;
- ExtractStage's steps: parsing the HTML once, the title, htmldate's date, trafilatura's main text on the
  parsed tree, the site keys (tldextract), the content hash and py3langid's language;
- the fast detector (`hashed`) scoring the texts in batches of SYNTHWEB_BATCH_SIZE;
- StoreStage's inserts into a fresh embedded store (chDB) in batches of the same size;
- the near-duplicate signatures `synthweb run` computes once the crawl ends (synthweb.neardup).
Start-up (imports, loading py3langid's model, opening the store) is measured apart, in fresh processes.
Best round per step (the machine is shared).

Then the crawl itself, with the stages added one at a time (`crawler.runner.run_crawl` in a child process,
`hashed` as the only detector, CPU of the process and its threads), next to plain Scrapy + trafilatura in
the same round: what each stage adds to a real crawl, start-up and background threads included (chDB's
run while the crawl waits on its politeness delays).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crawl_cpu_bench import child_cpu, run_plain, sites  # noqa: E402
from crawler.settings import SYNTHWEB_STAGES  # noqa: E402
from synthweb.sampleweb import SampleWeb  # noqa: E402

BATCH = 64
STARTUP = {
    "python + numpy": "import numpy",
    "scrapy": "import scrapy.crawler",
    "trafilatura + htmldate + tldextract": "import trafilatura, htmldate, tldextract",
    "py3langid model, as py3langid loads it": "import py3langid; py3langid.classify('warm up the model')",
    "py3langid model, from synthweb's cache": "from crawler.language import detect_language; detect_language('warm')",
    "numba (hashed kernel)": "import detectors.hashed",
    "chdb store, opened and migrated": "from synthweb.store import Store; import tempfile; "
    "Store('chdb:///' + tempfile.mkdtemp() + '/s').migrate()",
}


def fetch_pages(web: SampleWeb) -> list[tuple[str, str]]:
    """(url, html) of every page the sites link from their index."""
    out = []
    for seed in web.seeds:
        index = urllib.request.urlopen(seed, timeout=10).read().decode()
        for href in dict.fromkeys(re.findall(r'href="(/[^"]+)"', index)):
            url = seed.rstrip("/") + href
            with urllib.request.urlopen(url, timeout=10) as resp:
                if resp.headers.get_content_type() == "text/html":
                    out.append((url, resp.read().decode("utf-8", "replace")))
    return out


def cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def steps(pages: list[tuple[str, str]], tmp: Path) -> dict[str, float]:
    """CPU seconds of each step over all pages."""
    import trafilatura
    from trafilatura.metadata import extract_title
    from trafilatura.utils import load_html

    from crawler.extract import content_hash, detect_language, find_published, main_text, site_keys
    from detectors.runtime import load_detector
    from synthweb import neardup
    from synthweb.pipeline import Page
    from synthweb.store import Store

    out: dict[str, float] = {}
    out["peer: trafilatura.extract"] = cpu(lambda: [trafilatura.extract(h) for _, h in pages])
    trees = []
    out["parse html (load_html)"] = cpu(lambda: trees.extend(load_html(h) for _, h in pages))
    out["title"] = cpu(lambda: [extract_title(t) for t in trees])
    out["date (htmldate)"] = cpu(lambda: [find_published(t, u) for t, (u, _) in zip(trees, pages, strict=True)])
    texts = []
    main = lambda: texts.extend(main_text(t, u) for t, (u, _) in zip(trees, pages, strict=True))  # noqa: E731
    out["main text (trafilatura on the tree)"] = cpu(main)
    out["site keys (tldextract)"] = cpu(lambda: [site_keys(u) for u, _ in pages])
    out["content hash"] = cpu(lambda: [content_hash(t) for t in texts])
    out["language (py3langid)"] = cpu(lambda: [detect_language(t) for t in texts])
    fast = load_detector("hashed")
    out["fast detector (hashed)"] = cpu(lambda: [fast.score(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)])
    store = Store(f"chdb:///{tmp}/store-{time.time_ns()}")
    store.migrate()
    rows = [
        Page(url=u, snapshot="bench", text=t, content_hash=content_hash(t), word_count=len(t.split()), lang="en",
             host=host, domain=domain, detector="hashed", detector_version="1", p_synthetic=0.5)
        for (u, _), t in zip(pages, texts, strict=True)
        for host, domain, _ in [site_keys(u)]
    ]  # fmt: skip
    out["store inserts (chDB)"] = cpu(
        lambda: [store.insert_pages(rows[i : i + BATCH]) for i in range(0, len(rows), BATCH)]
    )
    out["near-duplicate signatures"] = cpu(lambda: [neardup.signature(t) for t in texts])
    return out


def startup_cpu() -> dict[str, float]:
    """CPU seconds of each start-up item in a fresh process, over the bare interpreter's."""

    def child(code: str) -> float:
        return child_cpu([sys.executable, "-c", code], {**os.environ, "PYTHONPATH": str(ROOT)})[0]

    base = min(child("pass") for _ in range(3))
    return {name: round(min(child(code) for _ in range(3)) - base, 3) for name, code in STARTUP.items()}


CRAWL_CHILD = """
import json, sys
from crawler.runner import run_crawl
print(json.dumps(run_crawl(sys.argv[2:], json.loads(sys.argv[1]), show_progress=False)))
"""
# The default stages (crawler/settings.py), added one at a time.
ABLATION = dict(
    zip(
        ["crawl only (no stages)", "+ extract", "+ score (hashed)", "+ store (chDB): every stage"],
        [SYNTHWEB_STAGES[:k] for k in range(len(SYNTHWEB_STAGES) + 1)],
        strict=True,
    )
)


def crawl_ablation(web: SampleWeb, tmp: Path, articles: int) -> dict[str, dict]:
    """CPU ms per page of the crawl with each prefix of the stages, and of plain Scrapy + trafilatura."""
    out = {"plain Scrapy + trafilatura": run_plain(web.seeds, tmp)}
    for name, stages in ABLATION.items():
        settings = {
            "SYNTHWEB_STAGES": stages, "SYNTHWEB_DB": f"chdb:///{tmp}/ablation-{time.time_ns()}",
            "SYNTHWEB_DETECTOR": "hashed", "SYNTHWEB_FAST_DETECTOR": "", "SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True,
            "SYNTHWEB_MAX_PAGES_PER_SITE": articles + 50, "SYNTHWEB_SNAPSHOT": "ablation",
        }  # fmt: skip
        cmd = [sys.executable, "-c", CRAWL_CHILD, json.dumps(settings), *web.seeds]
        cpu_s, wall, stdout, _ = child_cpu(cmd, {**os.environ, "PYTHONPATH": str(ROOT)})
        pages = json.loads(stdout.strip().splitlines()[-1])["pages_fetched"]
        out[name] = {
            "cpu_s": round(cpu_s, 2),
            "wall_s": round(wall, 1),
            "pages": pages,
            "cpu_ms_per_page": 1000 * cpu_s / pages,
        }
    plain = out["plain Scrapy + trafilatura"]["cpu_ms_per_page"]
    for row in out.values():
        row["ratio"] = round(row["cpu_ms_per_page"] / plain, 2)
        row["cpu_ms_per_page"] = round(row["cpu_ms_per_page"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "stage_profile.json")
    args = ap.parse_args()
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, SampleWeb(sites(args.articles)) as web:
        pages = fetch_pages(web)
        for _ in range(args.rounds):
            for name, seconds in steps(pages, Path(tmp)).items():
                best[name] = min(best.get(name, seconds), seconds)
        crawl = crawl_ablation(web, Path(tmp), args.articles)
    per_page = {name: round(1000 * s / len(pages), 3) for name, s in best.items()}
    setup = {"rounds": args.rounds, "batch": BATCH, "articles_per_site": args.articles, "sites": 3}
    result = {"pages": len(pages), "cpu_ms_per_page": per_page, "startup_cpu_s": startup_cpu(), "crawl": crawl,
              "setup": setup}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
