"""`synthweb wayback`: score Wayback Machine captures of domains, one snapshot per year.

For each domain and year the CDX API lists HTML captures with status 200, collapsed to
distinct URLs; up to N of them, spread over the year, are fetched in their raw `id_`
form (the archived bytes, without the Wayback toolbar) and go through the usual stages
with snapshot `wayback-YYYY`. The capture time is the fetch time and the fallback
publication date (date_source "capture"). Requests are paced (SYNTHWEB_WAYBACK_RATE per
second) and retried with exponential backoff on 429, 5xx, timeouts and connection errors;
what could not be fetched is recorded as skipped and returned in the summary.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from crawler.warc import HTML_TYPES, decode_body
from synthweb.driver import Batch, Progress, drive
from synthweb.pipeline import Page, Pipeline, batched_pages
from synthweb.store import store_of

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 120.0


class FetchFailed(Exception):
    """A request that still failed after its retries; `reason` is http_NNN or fetch_error."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class Capture:
    timestamp: str  # YYYYMMDDhhmmss
    original: str
    mimetype: str = ""
    status: str = ""

    @property
    def moment(self) -> datetime:
        return datetime.strptime(self.timestamp[:14].ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)


class PoliteClient:
    """requests.Session that keeps `rate` requests per second and retries with exponential backoff."""

    def __init__(self, rate: float, retries: int, backoff: float, timeout: float, user_agent: str):
        import requests

        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self._next = 0.0
        self.requests = 0

    def _pace(self) -> None:
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval

    def get(self, url: str, params: dict | None = None, max_bytes: int | None = None):
        """GET with retries; returns (response, body) or raises FetchFailed. Bodies over max_bytes end early."""
        import requests

        for attempt in range(self.retries + 1):
            self._pace()
            self.requests += 1
            wait = self.backoff * (2**attempt)
            try:
                with self.session.get(url, params=params, timeout=self.timeout, stream=True) as response:
                    if response.status_code in RETRY_STATUSES:
                        reason = f"http_{response.status_code}"
                        wait = max(wait, _retry_after(response.headers.get("Retry-After")))
                        detail = f"HTTP {response.status_code} from {response.url}"
                    elif response.status_code != 200:
                        raise FetchFailed(f"http_{response.status_code}", f"HTTP {response.status_code} from {url}")
                    else:
                        return response, _read(response, max_bytes)
            except requests.RequestException as exc:
                reason, detail = "fetch_error", f"{type(exc).__name__}: {exc}"[:500]
            if attempt < self.retries:
                log.info("retrying %s in %.1fs (%s)", url, wait, reason)
                time.sleep(wait)
        raise FetchFailed(reason, f"{detail} (after {self.retries + 1} attempts)")

    def close(self) -> None:
        self.session.close()


def _retry_after(value: str | None) -> float:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value else 0.0
    except ValueError:
        return 0.0


def _read(response, max_bytes: int | None) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(65536):
        chunks.append(chunk)
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            break
    return b"".join(chunks)


def cdx_captures(client: PoliteClient, cdx_url: str, domain: str, year: int, limit: int) -> list[Capture]:
    """HTML captures with status 200 of `domain` (and its subdomains) in `year`, one per distinct URL."""
    import json

    params = {
        "url": domain,
        "matchType": "domain",
        "from": str(year),
        "to": str(year),
        "output": "json",
        "fl": "timestamp,original,mimetype,statuscode",
        "filter": ["statuscode:200", "mimetype:text/html"],
        "collapse": "urlkey",
        "limit": str(limit),
    }
    _, body = client.get(cdx_url, params=params)
    try:
        rows = json.loads(body.decode("utf-8") or "[]")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FetchFailed("bad_cdx", f"CDX answer is not JSON: {exc}") from exc
    if not rows:
        return []
    header, *rows = rows
    index = {name: header.index(name) for name in ("timestamp", "original") if name in header}
    if len(index) < 2:
        raise FetchFailed("bad_cdx", f"CDX answer lacks timestamp/original columns: {header}")
    out = []
    for row in rows:
        values = dict(zip(header, row, strict=False))
        if values.get("statuscode", "200") == "200" and values.get("mimetype", "text/html") in HTML_TYPES:
            out.append(Capture(values["timestamp"], values["original"], values.get("mimetype", ""), "200"))
    return out


def pick(captures: list[Capture], n: int) -> list[Capture]:
    """Up to `n` captures of distinct URLs, spread evenly over the time they cover."""
    seen, distinct = set(), []
    for capture in sorted(captures, key=lambda c: c.timestamp):
        key = capture.original.split("#", 1)[0]
        if key not in seen:
            seen.add(key)
            distinct.append(capture)
    if len(distinct) <= n:
        return distinct
    return [distinct[(i * len(distinct)) // n] for i in range(n)]


def raw_capture_url(fetch_base: str, capture: Capture) -> str:
    """The `id_` form: the archived response as it was, without Wayback's rewriting."""
    return f"{fetch_base.rstrip('/')}/{capture.timestamp}id_/{capture.original}"


def fetch_base_for(cdx_url: str) -> str:
    parts = urlsplit(cdx_url)
    return f"{parts.scheme}://{parts.netloc}/web"


def capture_page(client: PoliteClient, fetch_base: str, capture: Capture, snapshot: str, max_bytes: int) -> Page:
    """Fetch one capture as a Page (a skip with the reason when it cannot be fetched or is not HTML)."""
    moment = capture.moment
    page = Page(url=capture.original, snapshot=snapshot, fetched_at=moment)
    page.published, page.date_source = moment.date(), "capture"
    url = raw_capture_url(fetch_base, capture)
    try:
        response, body = client.get(url, max_bytes=max_bytes)
    except FetchFailed as exc:
        page.skip, page.skip_detail, page.status = exc.reason, exc.detail, 0
        return page
    header = response.headers.get("Content-Type", "")
    page.status, page.content_type = 200, header.split(";", 1)[0].strip().lower()
    if len(body) > max_bytes:
        page.skip = "too_large"
    elif page.content_type and page.content_type not in HTML_TYPES:
        page.skip = "not_html"
    else:
        from crawler.extract import looks_binary

        if looks_binary(body):
            page.skip = "binary"
        else:
            page.html = decode_body(capture.original, body, header)
    return page


def _already_stored(store, snapshot: str, urls: list[str]) -> set[str]:
    if not urls:
        return set()
    _, rows = store.query(
        "SELECT DISTINCT url FROM pages WHERE snapshot = {s:String} AND url IN {u:Array(String)}",
        {"s": snapshot, "u": urls},
    )
    return {r[0] for r in rows}


def backfill(domains: list[str], years, per_year: int, settings, show_progress: bool = True) -> dict[str, Any]:
    """Fetch and store up to `per_year` captures per domain and year; return counts and failures."""

    cdx_url = settings.get("SYNTHWEB_WAYBACK_CDX_URL")
    fetch_base = settings.get("SYNTHWEB_WAYBACK_FETCH_URL") or fetch_base_for(cdx_url)
    client = PoliteClient(
        rate=settings.getfloat("SYNTHWEB_WAYBACK_RATE", 1.0),
        retries=settings.getint("SYNTHWEB_WAYBACK_RETRIES", 4),
        backoff=settings.getfloat("SYNTHWEB_WAYBACK_BACKOFF", 2.0),
        timeout=settings.getfloat("DOWNLOAD_TIMEOUT", 30),
        user_agent=settings.get("USER_AGENT"),
    )
    pipeline = Pipeline.from_settings(settings)
    store = store_of(pipeline, settings)
    max_bytes = settings.getint("DOWNLOAD_MAXSIZE", 10 * 1024 * 1024)
    batch_size = max(1, settings.getint("SYNTHWEB_BATCH_SIZE", 64))
    counts = {"captures_listed": 0, "fetched": 0, "already_stored": 0}
    failures: list[dict[str, str]] = []
    years = list(years)

    def batches(progress: Progress):
        task = progress.task("wayback domain-years", len(domains) * len(years))
        for domain in domains:
            for year in years:
                snapshot = f"wayback-{year}"
                try:
                    captures = cdx_captures(client, cdx_url, domain, year, limit=max(50, per_year * 20))
                except FetchFailed as exc:
                    failures.append({"what": f"CDX {domain} {year}", "reason": exc.reason, "detail": exc.detail})
                    progress.advance(task)
                    continue
                counts["captures_listed"] += len(captures)
                chosen = pick(captures, per_year)
                done = _already_stored(store, snapshot, [c.original for c in chosen])
                counts["already_stored"] += len(done)
                todo = [c for c in chosen if c.original not in done]
                pages = (capture_page(client, fetch_base, c, snapshot, max_bytes) for c in todo)
                for batch in batched_pages(pages, batch_size):
                    for page in batch:
                        if page.skip and page.status == 0:
                            failures.append({"what": page.url, "reason": page.skip, "detail": page.skip_detail})
                    counts["fetched"] += sum(1 for p in batch if p.status)
                    yield Batch(batch, task=task)
                progress.advance(task)

    started = time.monotonic()
    try:
        with Progress(show_progress) as progress:
            tally = drive(batches(progress), pipeline, progress)
    finally:
        pipeline.close()
        client.close()
    return {"captures_listed": counts["captures_listed"], "fetched": counts["fetched"], "stored": tally.kept,
            "skipped": sum(tally.skipped.values()), "already_stored": counts["already_stored"],
            "requests": client.requests, "seconds": round(time.monotonic() - started, 2),
            "failures": failures}  # fmt: skip
