"""CPU seconds per stored page: `synthweb run` against plain Scrapy + trafilatura on the same local web.

    python bench/crawl_cpu_bench.py [--articles 200] [--rounds 2] [--configs default,budget-only,fast-only]

Serves three sites of `--articles` articles each (texts of ../shared/data/detect/fast-detect-gpt, human and
machine; an index page links them all) on 127.0.0.x, then alternates, round by round, one process per run:
- plain: a Scrapy spider with the same politeness settings (robots.txt, DOWNLOAD_DELAY 0.25, AutoThrottle,
  2 requests per domain) that follows every same-site link and runs trafilatura.extract on each page,
  what a user would write by hand;
- synthweb configurations (`synthweb run`, a fresh store each):
  - default: the defaults (two-phase: hashed on every page, zeroshot on an auto-rate sample with at least
    SYNTHWEB_STRONG_MIN_DOCUMENTS per site);
  - budget-only: the same with SYNTHWEB_STRONG_MIN_DOCUMENTS=0, the auto rate's budget alone (what a
    crawl of many pages per site sees once the minimum is spent);
  - fast-only: SYNTHWEB_FAST_DETECTOR="" SYNTHWEB_DETECTOR=hashed (the path without any LM).
The CPU time is the child's user + system time (every thread), divided by the pages it stored (synthweb:
pages_stored; plain: pages trafilatura extracted text from). Ratios are against plain in the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.data import load_records  # noqa: E402
from synthweb.sampleweb import SampleWeb, Site, _articles  # noqa: E402

PLAIN = r"""
import sys, trafilatura, scrapy
from urllib.parse import urlsplit
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor

seeds = sys.argv[1:]
extracted = [0]

class Plain(scrapy.Spider):
    name = "plain"
    start_urls = seeds
    allowed_domains = [urlsplit(s).hostname for s in seeds]
    links = LinkExtractor()

    def parse(self, response):
        if trafilatura.extract(response.text):
            extracted[0] += 1
        for link in self.links.extract_links(response):
            yield response.follow(link.url, self.parse)

process = CrawlerProcess({
    "ROBOTSTXT_OBEY": True, "DOWNLOAD_DELAY": 0.25, "AUTOTHROTTLE_ENABLED": True, "AUTOTHROTTLE_START_DELAY": 0.25,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 2, "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False,
})
process.crawl(Plain)
process.start()
print(extracted[0])
"""

CONFIGS = {
    "default": {},
    "budget-only": {"SYNTHWEB_STRONG_MIN_DOCUMENTS": "0"},
    "fast-only": {"SYNTHWEB_FAST_DETECTOR": "", "SYNTHWEB_DETECTOR": "hashed"},
}


def sites(articles: int) -> list[Site]:
    records = load_records()
    texts = [{"id": f"r{i}", "kind": "machine" if r.label else "human", "model": "", "text": r.text}
             for i, r in enumerate(records) if len(r.text.split()) >= 80]  # fmt: skip
    out = []
    for k, name in enumerate(("alpha", "beta", "gamma")):
        chunk = texts[k * articles : (k + 1) * articles]
        out.append(Site(name, f"127.0.0.{k + 2}", articles=_articles(chunk, date(2019, 1, 1), date(2025, 6, 1))))
    return out


def child_cpu(cmd: list[str], env: dict) -> tuple[float, float, str, str]:
    """(CPU seconds of the child and its threads, wall seconds, stdout, stderr)."""
    before = os.times()
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    after = os.times()
    if result.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed: {result.stderr[-2000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return cpu, wall, result.stdout, result.stderr


def run_plain(seeds: list[str], tmp: Path) -> dict:
    script = tmp / "plain_spider.py"  # a file: Scrapy reads its callbacks' source, which `python -c` has not
    script.write_text(PLAIN)
    cpu, wall, out, _ = child_cpu([sys.executable, str(script), *seeds], dict(os.environ))
    pages = int(out.strip().splitlines()[-1])
    return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 1), "pages": pages, "cpu_ms_per_page": 1000 * cpu / pages}


def run_synthweb(seeds: list[str], config: str, tmp: Path, articles: int) -> dict:
    env = {**os.environ, **CONFIGS[config]}
    db = f"chdb:///{tmp}/{config}-{time.time_ns()}"
    cmd = [sys.executable, "-m", "synthweb.cli", "run", "--quiet", "--allow-private-networks", "--db", db,
           "--max-pages-per-site", str(articles + 50), *seeds]  # fmt: skip
    cpu, wall, _, err = child_cpu(cmd, env)
    summary = next(json.loads(line) for line in err.splitlines() if line.startswith("{"))
    pages = summary["pages_stored"]
    strong = subprocess.run(
        [sys.executable, "-m", "synthweb.cli", "sql", "--db", db, "--format", "json",
         "SELECT countIf(detector = 'zeroshot') AS strong FROM pages"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    strong_n = json.loads(strong.stdout)[0]["strong"] if strong.returncode == 0 else None
    return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 1), "pages": pages, "strong_scored": strong_n,
            "cpu_ms_per_page": 1000 * cpu / pages}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--configs", default="default,budget-only,fast-only")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "crawl_cpu_bench.json")
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp, SampleWeb(sites(args.articles)) as web:
        for r in range(args.rounds):
            row = {"plain": run_plain(web.seeds, Path(tmp))}
            for config in configs:
                row[config] = run_synthweb(web.seeds, config, Path(tmp), args.articles)
                row[config]["ratio"] = round(row[config]["cpu_ms_per_page"] / row["plain"]["cpu_ms_per_page"], 2)
            print(f"round {r}: {json.dumps(row)}", file=sys.stderr)
            rounds.append(row)
    summary = {
        name: {
            "median_cpu_ms_per_page": round(statistics.median(x[name]["cpu_ms_per_page"] for x in rounds), 1),
            **({"median_ratio": statistics.median(x[name]["ratio"] for x in rounds)} if name != "plain" else {}),
        }
        for name in ["plain", *configs]
    }
    result = {"rounds": rounds, "summary": summary, "setup": {"articles_per_site": args.articles, "sites": 3}}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
