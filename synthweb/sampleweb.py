"""A small local web for tests and demos: three sites on 127.0.0.2-4, traps included.

    with SampleWeb() as web:
        run_crawl(web.seeds, {"SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True})

Sites (texts from sample_texts.jsonl, see make_sample_texts.py):

* news  - 20 human articles dated 2019-2021; a calendar trap, an undeclared
          Latin-1 page, one article served under two URLs; robots.txt names a
          sitemap index whose sitemap lists the articles and an undated page
          linked from nowhere else (its date comes from <lastmod>).
* blog  - 20 machine articles dated 2024-2025; Crawl-delay 0.2, a /a/a/... trap,
          binary bytes served as text/html (/report.html), a short page.
* mixed - 10 human + 10 machine articles; a 30 MB page, a redirect loop,
          a 404 and a JSON file.

Every site has robots.txt with `Disallow: /private/` and links /private/secret.html
from its index. `python -m synthweb.sampleweb` serves it until Ctrl-C.
"""

from __future__ import annotations

import html
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TEXTS = Path(__file__).with_name("sample_texts.jsonl")
BIG_SIZE = 30 * 1024 * 1024
LATIN1_WORDS = ("café", "naïve", "déjà vu")
LATIN1_TEXT = (
    "Every morning the old professor walked to the café on the corner of the square. "
    "He liked to say that a naïve question is the best kind of question, because it "
    "admits what it does not know. The waiter brought his coffee before he asked, and "
    "each time the professor felt a little déjà vu, as if the whole morning had happened "
    "before in exactly this order. He read the newspaper, wrote two letters to former "
    "students, and left a generous tip on the marble table before walking home slowly."
)
SHORT_TEXT = "Closed for the holidays. Back soon."
UNDATED_PATH = "/notes/undated.html"
UNDATED_LASTMOD = date(2020, 5, 5)
UNDATED_TEXT = (
    "The village library reopened last week after a long winter of repairs to its roof. Volunteers "
    "carried the books back from the school hall in wheelbarrows, and the children helped sort them "
    "by colour before anyone noticed that this was not how libraries usually work. The librarian "
    "laughed, kept the colourful shelves for a month, and said that more people had borrowed poetry "
    "in those four weeks than in the whole of the previous year."
)


@dataclass
class Article:
    path: str
    id: str
    kind: str  # "human" or "machine"
    model: str
    title: str
    text: str
    published: date


@dataclass
class Site:
    """One site of the sample web and what a crawl of it should find."""

    name: str
    address: str
    crawl_delay: float = 0.0
    articles: list[Article] = field(default_factory=list)
    special: dict[str, str] = field(default_factory=dict)  # path -> what it is / expected skip
    duplicate_of: dict[str, str] = field(default_factory=dict)  # extra path -> article path
    sitemap: dict[str, date] = field(default_factory=dict)  # path -> <lastmod> in /sitemaps/articles.xml
    port: int = 0
    requests: list[tuple[str, float]] = field(default_factory=list)  # server log: (path, time)

    @property
    def root(self) -> str:
        return f"http://{self.address}:{self.port}/"

    @property
    def human(self) -> int:
        return sum(a.kind == "human" for a in self.articles)

    @property
    def machine(self) -> int:
        return sum(a.kind == "machine" for a in self.articles)

    def url(self, path: str) -> str:
        return f"http://{self.address}:{self.port}{path}"


def load_texts() -> list[dict]:
    with TEXTS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:6]) or "article"


def _dates(n: int, first: date, last: date) -> list[date]:
    span = (last - first).days
    return [first + timedelta(days=(i * span) // max(1, n - 1)) for i in range(n)]


def _articles(records: list[dict], first: date, last: date) -> list[Article]:
    out = []
    for i, (rec, day) in enumerate(zip(records, _dates(len(records), first, last), strict=True)):
        title = " ".join(rec["text"].split()[:8]).rstrip(".,;:")
        out.append(
            Article(
                f"/articles/{i:02d}-{_slug(title)}.html", rec["id"], rec["kind"], rec["model"], title, rec["text"], day
            )
        )
    return out


def _paragraphs(text: str) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    groups = [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]
    return "\n".join(f"<p>{html.escape(g)}</p>" for g in groups if g)


def _page(title: str, body: str, meta: str = "", charset: bool = True) -> str:
    head_charset = '<meta charset="utf-8">' if charset else ""
    return (
        f'<!doctype html><html lang="en"><head>{head_charset}<title>{html.escape(title)}</title>{meta}</head>'
        f'<body><header><nav><a href="/">Home</a></nav></header>{body}'
        "<footer><p>Sample web for synthweb tests.</p></footer></body></html>"
    )


def article_html(article: Article) -> str:
    meta = f'<meta property="article:published_time" content="{article.published.isoformat()}T08:00:00Z">'
    body = f"<article><h1>{html.escape(article.title)}</h1>{_paragraphs(article.text)}</article>"
    return _page(article.title, body, meta)


def sitemap_xml(site: Site, path: str) -> str:
    """The sitemap index (pointing at articles.xml) or the articles sitemap of a site."""
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    if path.endswith("index.xml"):
        loc = html.escape(site.url("/sitemaps/articles.xml"))
        return f'<?xml version="1.0"?><sitemapindex {ns}><sitemap><loc>{loc}</loc></sitemap></sitemapindex>'
    urls = "".join(
        f"<url><loc>{html.escape(site.url(p))}</loc><lastmod>{day.isoformat()}</lastmod></url>"
        for p, day in site.sitemap.items()
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {ns}>{urls}</urlset>'


def build_sites() -> list[Site]:
    texts = load_texts()
    human = [t for t in texts if t["kind"] == "human"]
    machine = [t for t in texts if t["kind"] == "machine"]
    news = Site("news", "127.0.0.2", articles=_articles(human[:20], date(2019, 1, 15), date(2021, 11, 20)))
    blog = Site(
        "blog",
        "127.0.0.3",
        crawl_delay=0.2,
        articles=_articles(machine[:20], date(2024, 1, 10), date(2025, 6, 30)),
    )
    mixed_records = [r for pair in zip(human[20:30], machine[20:30], strict=True) for r in pair]
    mixed = Site("mixed", "127.0.0.4", articles=_articles(mixed_records, date(2022, 2, 1), date(2023, 12, 1)))
    for site in (news, blog, mixed):
        site.special["/private/secret.html"] = "robots_disallowed"
    news.special.update({"/calendar?month=2020-01": "calendar_trap", "/latin1.html": "latin1"})
    dup = news.articles[0].path.replace("/articles/", "/print/")
    news.special[dup] = "duplicate"
    news.duplicate_of[dup] = news.articles[0].path
    # Sitemap lastmod a year after each article's own date: the date in the page must win.
    news.sitemap = {a.path: a.published + timedelta(days=365) for a in news.articles}
    news.sitemap[UNDATED_PATH] = UNDATED_LASTMOD
    blog.special.update({"/a/": "repeat_trap", "/report.html": "binary", "/short.html": "short"})
    mixed.special.update(
        {"/big.html": "too_large", "/loop-a": "redirect_loop", "/missing.html": "http_404", "/data.json": "not_html"}
    )
    return [news, blog, mixed]


class _Handler(BaseHTTPRequestHandler):
    site: Site  # set on the per-site subclass
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes | str, ctype: str = "text/html; charset=utf-8", **headers):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server naming)
        site = self.site
        site.requests.append((self.path, time.time()))
        parts = urlsplit(self.path)
        path = parts.path
        try:
            self._route(site, path, parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the crawler hung up (e.g. DOWNLOAD_MAXSIZE): expected

    def _route(self, site: Site, path: str, query: dict) -> None:
        by_path = {a.path: a for a in site.articles}
        if path == "/robots.txt":
            delay = f"Crawl-delay: {site.crawl_delay}\n" if site.crawl_delay else ""
            sitemap = f"Sitemap: {site.url('/sitemaps/index.xml')}\n" if site.sitemap else ""
            return self._send(200, f"User-agent: *\nDisallow: /private/\n{delay}{sitemap}", "text/plain")
        if site.sitemap and path in ("/sitemaps/index.xml", "/sitemaps/articles.xml"):
            return self._send(200, sitemap_xml(site, path), "application/xml")
        if site.sitemap and path == UNDATED_PATH:
            return self._send(200, _page("Library notes", f"<article><p>{UNDATED_TEXT}</p></article>"))
        if path == "/":
            links = [(a.path, a.title) for a in site.articles] + [(p, k) for p, k in site.special.items()]
            items = "".join(f'<li><a href="{html.escape(p)}">{html.escape(t)}</a></li>' for p, t in links)
            return self._send(200, _page(f"{site.name} index", f"<h1>{site.name}</h1><ul>{items}</ul>"))
        if path in by_path:
            return self._send(200, article_html(by_path[path]))
        if path in site.duplicate_of:
            return self._send(200, article_html(by_path[site.duplicate_of[path]]))
        kind = site.special.get(path) or site.special.get(f"{path}?month=2020-01")
        if path.startswith("/private/"):
            return self._send(200, _page("secret", "<p>This page must never be crawled.</p>"))
        if kind == "calendar_trap":
            year, month = map(int, (query.get("month") or ["2020-01"])[0].split("-"))
            nxt = f"{year + month // 12}-{month % 12 + 1:02d}"
            body = f'<h1>Events {year}-{month:02d}</h1><p>No events.</p><a href="/calendar?month={nxt}">next</a>'
            return self._send(200, _page("calendar", body))
        if re.fullmatch(r"(/a)+/", path):
            return self._send(200, _page("a", '<p>Nothing here.</p><a href="a/">deeper</a>'))
        if kind == "latin1":
            body = _page(
                "Morning at the café",
                f"<article><h1>Morning at the café</h1><p>{LATIN1_TEXT}</p></article>",
                charset=False,
            )
            # Latin-1 bytes and no charset in the header or a <meta>: the crawler must sniff it.
            return self._send(200, body.encode("latin-1"), "text/html")
        if kind == "binary":
            rng = random.Random(7)  # deterministic noise with NULs
            return self._send(200, b"\x00\x01\x02" + rng.randbytes(20000))
        if kind == "short":
            return self._send(200, _page("Closed", f"<article><p>{SHORT_TEXT}</p></article>"))
        if kind == "not_html":
            return self._send(200, json.dumps({"articles": len(site.articles)}), "application/json")
        if path == "/loop-a":
            return self._send(302, "", Location="/loop-b")
        if path == "/loop-b":
            return self._send(302, "", Location="/loop-a")
        if kind == "too_large":
            return self._stream_big()
        return self._send(404, _page("not found", "<p>Not found.</p>"))

    def _stream_big(self) -> None:
        # Streamed from one reusable chunk so the 30 MB never sits in memory.
        chunk = (b"<p>" + b"filler text " * 5450 + b"</p>\n")[: 64 * 1024]
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(BIG_SIZE))
        self.end_headers()
        sent = 0
        while sent < BIG_SIZE:
            piece = chunk[: BIG_SIZE - sent]
            self.wfile.write(piece)
            sent += len(piece)


class SampleWeb:
    """Context manager serving the sample sites, each on its own 127.0.0.N and an ephemeral port."""

    def __init__(self, sites: list[Site] | None = None):
        self.sites: list[Site] = sites or build_sites()
        self._servers: list[ThreadingHTTPServer] = []

    @property
    def seeds(self) -> list[str]:
        return [site.root for site in self.sites]

    def site(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)

    def start(self) -> SampleWeb:
        for site in self.sites:
            handler = type(f"{site.name.title()}Handler", (_Handler,), {"site": site})
            server = ThreadingHTTPServer((site.address, 0), handler)
            server.daemon_threads = True
            site.port = server.server_address[1]
            threading.Thread(target=server.serve_forever, name=f"sampleweb-{site.name}", daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> SampleWeb:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    with SampleWeb() as web:
        for site in web.sites:
            print(f"{site.name:6s} {site.root}  human={site.human} machine={site.machine}")
        print("seeds:", ",".join(web.seeds), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
