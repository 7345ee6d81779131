"""Read WARC and WET files (Common Crawl's layout) record by record into `Page`s.

Sources are local paths, http(s) URLs or s3:// URLs; every one is streamed (a file
object or a streaming HTTP body handed to warcio), never loaded whole. A record
becomes a Page that the usual stages take: an HTML `response` record carries its
HTML, a WET `conversion` record its text. Records that cannot become a page are
Pages with a `skip` reason (not_html, truncated, broken_record, ...) so the store
records them; records that are not captures (warcinfo, request, metadata) are
counted and passed over.
"""

from __future__ import annotations

import html as html_lib
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from crawler.extract import looks_binary
from synthweb.pipeline import Page

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
PAGE_RECORDS = ("response", "conversion", "revisit", "resource")
# Common Crawl's public bucket is served over plain HTTPS here (no credentials, no boto3).
KNOWN_BUCKETS = {"commoncrawl": "https://data.commoncrawl.org"}
CC_CRAWL = re.compile(r"CC-MAIN-\d{4}-\d{2}")


class WarcSourceError(Exception):
    """A source that cannot be opened (missing file, HTTP error, bad URL)."""


@dataclass
class Record:
    """One WARC record read from a source: its offset and, for captures, the Page."""

    offset: int
    kind: str  # WARC-Type, or "broken" where the file breaks off
    page: Page | None  # None for records that are not captures
    seek: int  # where a resumed read starts: this record, or the last whole one before a break


def source_key(source: str) -> str:
    """The identity of a source in the store (`pages.source`, `ingest_progress.source`)."""
    if "://" in source:
        return "warc:" + source
    return "warc:" + str(Path(source).expanduser().resolve())


def default_snapshot(source: str) -> str:
    """CC-MAIN-YYYY-WW for Common Crawl paths, else warc-<file name without extensions>."""
    found = CC_CRAWL.search(source)
    if found:
        return found.group(0)
    name = source.rstrip("/").rsplit("/", 1)[-1]
    return "warc-" + re.sub(r"\.(warc|wet|gz)$", "", re.sub(r"\.(warc|wet|gz)$", "", name))


def https_url(source: str, s3_endpoint: str = "") -> str:
    """The HTTPS URL of an s3://bucket/key source (public buckets), else the source unchanged."""
    if not source.startswith("s3://"):
        return source
    bucket, _, key = source[len("s3://") :].partition("/")
    if not bucket or not key:
        raise WarcSourceError(f"bad S3 URL {source!r}: expected s3://bucket/key")
    if s3_endpoint:
        return f"{s3_endpoint.rstrip('/')}/{bucket}/{key}"
    base = KNOWN_BUCKETS.get(bucket, f"https://{bucket}.s3.amazonaws.com")
    return f"{base}/{key}"


class OpenSource:
    """A readable byte stream of a source starting at `start`, closed on exit.

    Local files seek; HTTP asks for `Range: bytes=start-` and falls back to reading
    from 0 when the server ignores it (`base` then is 0 and the reader skips ahead).
    """

    def __init__(self, source: str, start: int = 0, s3_endpoint: str = "", timeout: float = 60.0, user_agent=""):
        self.source = source
        self.start = max(0, start)
        self.s3_endpoint = s3_endpoint
        self.timeout = timeout
        self.user_agent = user_agent
        self.base = 0
        self._response = None
        self.stream = None

    def __enter__(self):
        url = https_url(self.source, self.s3_endpoint)
        if urlsplit(url).scheme in ("http", "https"):
            import requests

            headers = {"User-Agent": self.user_agent} if self.user_agent else {}
            if self.start:
                headers["Range"] = f"bytes={self.start}-"
            try:
                response = requests.get(url, stream=True, timeout=self.timeout, headers=headers)
            except requests.RequestException as exc:
                raise WarcSourceError(f"cannot fetch {url}: {exc}") from exc
            if response.status_code not in (200, 206):
                response.close()
                raise WarcSourceError(f"cannot fetch {url}: HTTP {response.status_code}")
            self.base = self.start if response.status_code == 206 else 0
            response.raw.decode_content = False  # warcio decompresses gzip members itself
            self._response, self.stream = response, response.raw
        else:
            path = Path(self.source).expanduser()
            try:
                self.stream = path.open("rb")
            except OSError as exc:
                raise WarcSourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
            self.stream.seek(self.start)
            self.base = 0  # a seekable file reports absolute offsets itself
        return self

    def __exit__(self, *exc) -> None:
        if self._response is not None:
            self._response.close()
        elif self.stream is not None:
            self.stream.close()


def read_records(
    stream, snapshot: str, key: str, base: int = 0, after: int = -1, max_bytes: int = 10 * 1024 * 1024
) -> Iterator[Record]:
    """Yield the records of an open WARC/WET stream whose offset is above `after`.

    `base` is added to warcio's offsets (a stream opened at a byte range). A file that
    breaks off mid-way ends with one `broken_file` skip at the offset where it broke.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    iterator = ArchiveIterator(stream, check_digests=False)
    records = iter(iterator)
    last = -1
    while True:
        try:
            record = next(records)
            if record.format != "warc":  # warcio reads any line-oriented junk as ARC; we take WARC only
                raise ArchiveLoadFailed(f"not a WARC record (looks like {record.format!r})")
            kind = record.rec_type
            page = record_page(record, snapshot, max_bytes) if kind in PAGE_RECORDS else None
            offset = base + iterator.get_record_offset()  # reads the rest of the record
        except StopIteration:
            return
        except (ArchiveLoadFailed, zlib.error, EOFError, ValueError) as exc:
            offset = max(last, after) + 1
            if last < after:  # breaks where an earlier run recorded the break already
                return
            detail = f"{type(exc).__name__}: {str(exc).strip()[:400]}"
            page = Page(url=_placeholder_url(key, offset), snapshot=snapshot, status=0, skip="broken_file")
            page.skip_detail, page.source, page.source_offset = detail, key, offset
            yield Record(offset, "broken", page, max(last, 0))
            return
        last = offset
        if offset <= after:
            continue
        if page is not None:
            page.source, page.source_offset = key, offset
        yield Record(offset, kind, page, offset)


def _placeholder_url(key: str, offset: int) -> str:
    # skipped_pages.url for a part of a file that has no record URL.
    target = key.removeprefix("warc:")
    return f"{target}#offset={offset}" if "://" in target else f"file://{target}#offset={offset}"


def capture_time(record) -> datetime:
    value = record.rec_headers.get_header("WARC-Date") or ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record_page(record, snapshot: str, max_bytes: int) -> Page:
    """The Page of one capture record, with a skip reason when it cannot be scored."""
    fetched = capture_time(record)
    url = record.rec_headers.get_header("WARC-Target-URI") or ""
    page = Page(url=url, snapshot=snapshot, fetched_at=fetched)
    # The capture date is the fallback publication date: ExtractStage keeps it only
    # when the page carries none of its own.
    page.published, page.date_source = fetched.date(), "capture"
    if not url.startswith(("http://", "https://")):
        page.url = url or "about:blank"
        page.skip = "bad_url"
        return page
    kind = record.rec_type
    if record.http_headers is not None:
        page.status = int(record.http_headers.get_statuscode() or 0)
        page.content_type = _mime(record.http_headers.get_header("Content-Type"))
    else:
        page.content_type = _mime(record.rec_headers.get_header("Content-Type"))
    truncated = record.rec_headers.get_header("WARC-Truncated")
    if kind == "revisit":
        page.skip, page.skip_detail = "revisit", record.rec_headers.get_header("WARC-Refers-To-Target-URI") or ""
        return page
    if truncated:
        page.skip, page.skip_detail = "truncated", f"WARC-Truncated: {truncated}"
        return page
    if kind == "response" and page.status != 200:
        page.skip = f"http_{page.status}"
        return page
    if kind == "conversion":
        page.content_type = page.content_type or "text/plain"
    elif page.content_type not in HTML_TYPES:
        page.skip = "not_html"
        return page
    try:
        body = record.content_stream().read(max_bytes + 1)
    except Exception as exc:  # a broken chunked/gzip payload, a stream cut mid-record
        page.skip, page.skip_detail = "broken_record", f"{type(exc).__name__}: {exc}"[:500]
        return page
    if len(body) > max_bytes:
        page.skip = "too_large"
        return page
    if record.raw_stream.limit > 0:  # fewer bytes than the record's Content-Length: the file is cut
        page.skip = "broken_record"
        page.skip_detail = f"record ends {record.raw_stream.limit} bytes before its Content-Length"
        return page
    if looks_binary(body):
        page.skip = "binary"
        return page
    if kind == "conversion":
        page.text = body.decode("utf-8", errors="replace")
        return page
    page.html = decode_body(url, body, record.http_headers.get_header("Content-Type") if record.http_headers else "")
    return page


def _mime(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def decode_body(url: str, body: bytes, content_type: str | None) -> str:
    """Decode an HTML body with the crawler's charset rules (crawler.spiders.site.decode_html)."""
    from scrapy.http import HtmlResponse

    from crawler.spiders.site import decode_html

    headers = {"Content-Type": content_type} if content_type else {}
    return decode_html(HtmlResponse(url, body=body, headers=headers))


def text_as_html(text: str) -> str:
    """A minimal HTML page around a WET text, for the pages.raw v1 message (it carries HTML only)."""
    paragraphs = "".join(f"<p>{html_lib.escape(line)}</p>" for line in text.splitlines() if line.strip())
    return f"<html><body><article>{paragraphs}</article></body></html>"
