"""Ingest rate of `synthweb ingest warc` on a generated WARC file, end to end into embedded chDB.

python bench/ingest_bench.py [--records 10000] [--wet]

Writes a gzipped WARC of N HTML response records (sample-web articles, each made distinct),
then measures, in records per second:
  1. warcio alone: iterate the records and read every payload (the ceiling of any reader);
  2. crawler.warc.read_records: records to Pages (status, type, size checks, charset decoding);
  3. ingest_archives end to end: extract -> score -> store into a fresh chDB store, 64 pages a batch,
     with resume bookkeeping (one ingest_progress row per batch), and the time per stage.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SYNTHWEB_ORT_PROVIDERS", "CPUExecutionProvider")


def generate(path: Path, records: int, wet: bool) -> Path:
    from synthweb.sampleweb import build_sites
    from tests.support.crawl import write_warc

    articles = [a for site in build_sites() for a in site.articles]
    specs = []
    for i in range(records):
        article = articles[i % len(articles)]
        text = f"{article.text} Record number {i} of the benchmark."
        day = f"20{19 + i % 7:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}"  # publication dates over 7 years
        captured = f"2025-03-{1 + i % 28:02d}T12:00:00Z"  # one crawl, as in a Common Crawl file
        if wet:
            url = f"http://site{i % 50}.example/{i}"
            specs.append({"type": "conversion", "url": url, "body": text, "date": captured})
            continue
        html = (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{article.title}</title>'
            f'<meta property="article:published_time" content="{day}T08:00:00Z"></head><body>'
            f"<nav><a href='/'>Home</a></nav><article><h1>{article.title}</h1><p>{text}</p></article>"
            "<footer>bench</footer></body></html>"
        )
        specs.append({"url": f"http://site{i % 50}.example/articles/{i}.html", "body": html, "date": captured})
    return write_warc(path, specs)


def warcio_rate(path: Path) -> tuple[int, float]:
    from warcio.archiveiterator import ArchiveIterator

    start, n = time.perf_counter(), 0
    with path.open("rb") as f:
        for record in ArchiveIterator(f):
            record.content_stream().read()
            n += 1
    return n, time.perf_counter() - start


def fastwarc_rate(path: Path) -> tuple[int, float] | None:
    """The peer reader: fastwarc (resiliparse's C++ WARC reader), same loop; None where it is not installed
    (`pip install --no-deps fastwarc==2.0.1`, for this bench only)."""
    try:
        from fastwarc.warc import ArchiveIterator
    except ImportError:
        return None
    start, n = time.perf_counter(), 0
    with path.open("rb") as f:
        for record in ArchiveIterator(f, parse_http=False):
            record.reader.read()
            n += 1
    return n, time.perf_counter() - start


def reader_rate(path: Path) -> tuple[int, float]:
    from crawler.warc import OpenSource, read_records, source_key

    start, n = time.perf_counter(), 0
    with OpenSource(str(path)) as opened:
        for _ in read_records(opened.stream, "bench", source_key(str(path))):
            n += 1
    return n, time.perf_counter() - start


class Timed:
    """Wraps a stage's run to add the seconds spent in it (not counting the stages feeding it)."""

    def __init__(self, stage, clock: dict):
        self.stage, self.clock, self.name = stage, clock, stage.name

    def run(self, pages, **kwargs):
        batch = list(pages)  # pull the upstream stages first, outside this stage's clock
        start = time.perf_counter()
        out = list(self.stage.run(batch, **kwargs))
        self.clock[self.name] = self.clock.get(self.name, 0.0) + time.perf_counter() - start
        return iter(out)

    def __getattr__(self, name):
        return getattr(self.stage, name)


def end_to_end(path: Path, db: str) -> dict:
    import crawler.ingest as ingest
    from synthweb.config import load_settings
    from synthweb.pipeline import Pipeline

    clock: dict[str, float] = {}
    original = Pipeline.from_settings.__func__

    def timed_from_settings(cls, settings, classes=None):
        pipeline = original(cls, settings, classes)
        pipeline.stages = [Timed(s, clock) for s in pipeline.stages]
        return pipeline

    Pipeline.from_settings = classmethod(timed_from_settings)
    from synthweb.store import StoreStage

    ingest.StoreStage = _StoreLookup(StoreStage)
    settings = load_settings({"SYNTHWEB_DB": db})
    summary = ingest.ingest_archives([str(path)], settings, snapshot="bench", show_progress=False)
    summary["stage_seconds"] = {k: round(v, 2) for k, v in clock.items()}
    return summary


class _StoreLookup:
    """isinstance(Timed(StoreStage), StoreStage) for ingest_archives' store lookup."""

    def __init__(self, cls):
        self.cls = cls

    def __instancecheck__(self, obj):
        return isinstance(getattr(obj, "stage", obj), self.cls)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--wet", action="store_true", help="WET conversion records (text) instead of HTML responses")
    ap.add_argument("--readers-only", action="store_true", help="the reading rows only, not the end-to-end ingest")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp) / ("bench.wet.gz" if args.wet else "bench.warc.gz"), args.records, args.wet)
        size = path.stat().st_size / 1e6
        print(f"{args.records} {'WET' if args.wet else 'HTML response'} records, {size:.1f} MB gzipped WARC\n")
        n, seconds = warcio_rate(path)
        print("| stage | records | seconds | records/s |\n|---|---|---|---|")
        print(f"| warcio iterate + read payload | {n} | {seconds:.2f} | {n / seconds:,.0f} |")
        peer = fastwarc_rate(path)
        if peer is not None:
            print(f"| fastwarc iterate + read payload | {peer[0]} | {peer[1]:.2f} | {peer[0] / peer[1]:,.0f} |")
        n, seconds = reader_rate(path)
        print(f"| crawler.warc.read_records (to Pages) | {n} | {seconds:.2f} | {n / seconds:,.0f} |")
        if args.readers_only:
            return
        summary = end_to_end(path, f"chdb:///{tmp}/store")
        n, seconds = summary["records"], summary["seconds"]
        print(f"| ingest end to end (extract, score, store in chDB) | {n} | {seconds:.2f} | {n / seconds:,.0f} |")
        print(
            f"\nstored {summary['stored']}, skipped {summary['skipped']}; seconds per stage {summary['stage_seconds']}"
        )


if __name__ == "__main__":
    main()
