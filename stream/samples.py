"""Raw-page messages built from the bundled sample texts, for tests and the stream benchmark."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from schemas.messages import encode_page
from synthweb.pipeline import Page


def sample_pages(n: int, snapshot: str, sites: int = 4) -> list[Page]:
    """`n` fetched pages (real article HTML from synthweb/sample_texts.jsonl) spread over `sites` domains."""
    from synthweb.sampleweb import Article, article_html, load_texts

    texts = load_texts()
    pages = []
    for i in range(n):
        record = texts[i % len(texts)]
        title = f"{' '.join(record['text'].split()[:8])} ({i})"
        day = date(2020, 1, 1) + timedelta(days=i % 1500)
        article = Article(f"/a/{i}.html", record["id"], record["kind"], record["model"], title, record["text"], day)
        html = article_html(article)
        site = f"synthweb-sample{i % sites}.org"  # never fetched; a real suffix so domains differ
        pages.append(
            Page(
                url=f"https://{site}/articles/{i}.html",
                snapshot=snapshot,
                fetched_at=datetime(2026, 1, 5, tzinfo=UTC),
                content_type="text/html; charset=utf-8",
                html=html,
            )
        )
    return pages


def sample_messages(n: int, snapshot: str, sites: int = 4) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs for `pages.raw`: keyed by registered domain, as the crawler fleet sends them."""
    from crawler.extract import site_keys

    return [(site_keys(p.url)[1].encode(), encode_page(p, job_id="sample")) for p in sample_pages(n, snapshot, sites)]
