"""robots.txt by RFC 9309, against a real local server: 5xx and unreachable disallow, 4xx allows; fetched once.

With sitemap discovery on, the spider's own robots.txt fetch (for its Sitemap: lines) is the rules too
(RobotsCrawlDelayMiddleware.adopt), so each case runs with discovery off and on.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.crawl import crawl_in_subprocess

FAST = {"DOWNLOAD_DELAY": 0.01, "AUTOTHROTTLE_START_DELAY": 0.01, "SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True,
        "RETRY_TIMES": 0, "SYNTHWEB_SITEMAPS": False}  # fmt: skip
PAGE = b"<html><head><title>t</title></head><body><p>" + b"Plain words of a local page. " * 40 + b"</p></body></html>"


def serve(robots_status: int | None):
    """A site on 127.0.0.6 whose robots.txt answers `robots_status` (None: the connection is dropped unanswered);
    returns (server, requested paths)."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requested.append(self.path)
            if self.path == "/robots.txt" and robots_status is None:
                self.close_connection = True  # no status line at all: the fetch fails
                return
            status, body, ctype = (robots_status, b"oops", "text/plain") if self.path == "/robots.txt" else (
                200, PAGE, "text/html; charset=utf-8")  # fmt: skip
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.6", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requested


@pytest.mark.parametrize("sitemaps", [False, True])
@pytest.mark.parametrize("status, crawled", [(500, False), (503, False), (404, True), (403, True)])
def test_robots_status_decides_whether_the_site_is_crawled(status, crawled, sitemaps):
    server, requested = serve(status)
    try:
        settings = {**FAST, "SYNTHWEB_SITEMAPS": sitemaps}
        _, pages = crawl_in_subprocess([f"http://127.0.0.6:{server.server_port}/"], settings, timeout=60)
    finally:
        server.shutdown()
    assert requested.count("/robots.txt") == 1, requested
    assert ("/" in requested) is crawled, requested
    assert bool([p for p in pages if not p["skip"]]) is crawled, pages


@pytest.mark.parametrize("sitemaps", [False, True])
def test_an_unreachable_robots_txt_disallows_the_site(sitemaps):
    server, requested = serve(None)
    try:
        settings = {**FAST, "SYNTHWEB_SITEMAPS": sitemaps}
        _, pages = crawl_in_subprocess([f"http://127.0.0.6:{server.server_port}/"], settings, timeout=60)
    finally:
        server.shutdown()
    assert "/robots.txt" in requested and "/" not in requested, requested
    assert not [p for p in pages if not p["skip"]]
