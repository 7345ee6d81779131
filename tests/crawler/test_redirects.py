"""Redirects that leave the site are recorded, not followed (two real local servers on 127.0.0.x)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.crawl import crawl_in_subprocess

FAST = {"DOWNLOAD_DELAY": 0.01, "AUTOTHROTTLE_START_DELAY": 0.01, "SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True,
        "SYNTHWEB_SITEMAPS": False}  # fmt: skip


def serve(host: str, routes: dict[str, tuple[int, dict]]):
    """A server on `host` answering each path with (status, headers) and a small page; returns (server, paths)."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requested.append(self.path)
            status, headers = routes.get(self.path, (404, {}))
            body = b"<html><body><p>" + b"A few plain words here. " * 40 + b"</p></body></html>"
            self.send_response(status)
            for name, value in {"Content-Type": "text/html", "Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requested


def test_an_offsite_redirect_is_a_recorded_skip_and_its_target_is_never_fetched():
    other, other_requests = serve("127.0.0.7", {"/landing": (200, {})})
    target = f"http://127.0.0.7:{other.server_port}/landing"
    site, _ = serve("127.0.0.6", {"/": (302, {"Location": target}), "/robots.txt": (404, {})})
    try:
        _, pages = crawl_in_subprocess([f"http://127.0.0.6:{site.server_port}/"], FAST, timeout=60)
    finally:
        site.shutdown()
        other.shutdown()
    assert other_requests == []  # neither the target nor its robots.txt
    [page] = pages
    assert page["skip"] == "offsite_redirect" and page["url"].startswith("http://127.0.0.6:")
    assert target in page["skip_detail"]
