"""Test helpers: a stage that collects pages to a file, and a crawl in a subprocess.

A Twisted reactor cannot restart, so every test crawl runs in its own process:

    summary, pages = crawl_in_subprocess(seeds, {"SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True})
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from synthweb.pipeline import NotConfigured, Page, Stage

REPO = Path(__file__).resolve().parent.parent
COLLECTOR = "crawler.testing.CollectorStage"


class CollectorStage(Stage):
    """Appends every page (as JSON) to the file named by SYNTHWEB_COLLECT_PATH."""

    name = "collect"

    def __init__(self, path: str):
        self.path = path

    @classmethod
    def from_settings(cls, settings) -> CollectorStage:
        path = settings.get("SYNTHWEB_COLLECT_PATH")
        if not path:
            raise NotConfigured("SYNTHWEB_COLLECT_PATH not set")
        return cls(path)

    def run(self, pages: Iterable[Page]) -> Iterator[Page]:
        with open(self.path, "a", encoding="utf-8") as f:
            for page in pages:
                f.write(json.dumps(page.to_dict(), default=str, ensure_ascii=False) + "\n")
                yield page


def crawl_in_subprocess(
    seeds: list[str], settings: dict[str, Any] | None = None, timeout: float = 120
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Crawl `seeds` with ExtractStage + CollectorStage in a fresh Python; return (summary, pages)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pages.jsonl"
        overrides = {
            "SYNTHWEB_STAGES": ["crawler.extract.ExtractStage", COLLECTOR],
            "SYNTHWEB_COLLECT_PATH": str(out),
            "LOG_LEVEL": "ERROR",
            **(settings or {}),
        }
        env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "crawler.settings"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        proc = subprocess.run(
            [sys.executable, "-m", "crawler.testing", json.dumps({"seeds": seeds, "settings": overrides})],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"crawl failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        pages = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        return summary, pages


def _main(argv: list[str]) -> None:
    from crawler.runner import run_crawl

    args = json.loads(argv[0])
    summary = run_crawl(args["seeds"], args.get("settings") or {}, show_progress=False)
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    _main(sys.argv[1:])


def write_warc(path: str | Path, records: list[dict[str, Any]], gzip: bool | None = None) -> Path:
    """Write a WARC (or WET) file with warcio; gzip by the .gz suffix unless `gzip` says otherwise.

    Each record: {"url", "type" ("response" | "conversion" | "request" | "warcinfo"), "body" (bytes|str),
    "date" (WARC-Date, ISO), "content_type", "status" (responses), "headers" (extra WARC headers)}.
    """
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path = Path(path)
    with path.open("wb") as f:
        writer = WARCWriter(f, gzip=path.suffix == ".gz" if gzip is None else gzip)
        for rec in records:
            body = rec.get("body", b"")
            body = body.encode("utf-8") if isinstance(body, str) else body
            kind = rec.get("type", "response")
            warc_headers = {"WARC-Date": rec.get("date", "2024-01-02T03:04:05Z"), **rec.get("headers", {})}
            http_headers = None
            if kind == "response":
                status = rec.get("status", 200)
                http_headers = StatusAndHeaders(
                    f"{status} {'OK' if status == 200 else 'Other'}",
                    [("Content-Type", rec.get("content_type", "text/html; charset=utf-8"))],
                    protocol="HTTP/1.1",
                )
            elif kind == "conversion":
                warc_headers.setdefault("Content-Type", rec.get("content_type", "text/plain"))
            record = writer.create_warc_record(
                rec.get("url", ""),
                kind,
                payload=io.BytesIO(body),
                http_headers=http_headers,
                warc_headers_dict=warc_headers,
                warc_content_type=rec.get("content_type", "text/plain") if kind == "conversion" else None,
            )
            writer.write_record(record)
    return path
