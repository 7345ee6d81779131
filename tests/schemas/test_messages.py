import json
from datetime import UTC, datetime

import pytest

from schemas.messages import (
    CrawlJob,
    MessageError,
    decode_dead_letter,
    decode_job,
    decode_page,
    encode_dead_letter,
    encode_job,
    encode_page,
)
from synthweb.pipeline import Page


def test_job_round_trip():
    job = CrawlJob(snapshot="s1", domain="example.org", seeds=["https://example.org/"], max_pages=50)
    assert decode_job(encode_job(job)) == job


def test_page_round_trip_keeps_fetch_fields():
    page = Page(
        url="https://example.org/a",
        snapshot="s1",
        fetched_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        status=200,
        content_type="text/html",
        html="<p>café</p>",
    )
    decoded = decode_page(encode_page(page, job_id="j1"))
    assert (decoded.url, decoded.html, decoded.fetched_at, decoded.status) == (
        page.url,
        page.html,
        page.fetched_at,
        200,
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe not utf-8", "undecodable"),
        (b"{not json", "undecodable"),
        (b"[1, 2]", "invalid"),
        (json.dumps({"schema": "synthweb.raw_page", "version": 1, "url": "x"}).encode(), "invalid"),
        (json.dumps({"schema": "synthweb.raw_page", "version": 7}).encode(), "unsupported_version"),
    ],
)
def test_bad_messages_name_their_reason(data, reason):
    with pytest.raises(MessageError) as info:
        decode_page(data)
    assert info.value.reason == reason


def test_producers_validate_too():
    with pytest.raises(MessageError, match="seeds"):
        encode_job(CrawlJob(snapshot="s1", domain="example.org", seeds=[], max_pages=5))


def test_dead_letter_keeps_original_bytes():
    letter = decode_dead_letter(encode_dead_letter("undecodable", "bad", "pages.raw", 3, 42, b"\x00\xff"))
    assert (letter["original"], letter["partition"], letter["offset"]) == (b"\x00\xff", 3, 42)
