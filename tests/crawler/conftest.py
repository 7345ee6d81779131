"""A local archive server on 127.0.0.30: files with Range support, a Wayback CDX API and raw captures."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest


@dataclass
class ArchiveServer:
    """What the server serves; tests fill these dicts and read `log`."""

    files: dict[str, bytes] = field(default_factory=dict)  # /files/<name>
    # CDX rows: (timestamp, original, mimetype, status, body bytes)
    captures: list[tuple[str, str, str, str, bytes]] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses answered before the real one
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers)
    honour_range: bool = True  # False: answer every file request in full (200), as some servers do
    port: int = 0
    address: str = "127.0.0.30"

    @property
    def root(self) -> str:
        return f"http://{self.address}:{self.port}"


def _handler(state: ArchiveServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/octet-stream", **headers) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            state.log.append((self.path, dict(self.headers)))
            parts = urlsplit(self.path)
            scripted = state.failures.get(self.path) or state.failures.get(parts.path)
            if scripted:
                return self._send(scripted.pop(0), b"busy", "text/plain", Retry_After="0")
            if parts.path.startswith("/files/"):
                return self._file(parts.path[len("/files/") :])
            if parts.path == "/cdx/search/cdx":
                return self._cdx(parse_qs(parts.query))
            if parts.path.startswith("/web/"):
                return self._capture(self.path[len("/web/") :])
            return self._send(404, b"not found", "text/plain")

        def _file(self, name: str) -> None:
            data = state.files.get(unquote(name))
            if data is None:
                return self._send(404, b"no such file", "text/plain")
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes=") and state.honour_range:
                start = int(wanted[len("bytes=") :].split("-")[0])
                return self._send(206, data[start:], Content_Range=f"bytes {start}-{len(data) - 1}/{len(data)}")
            return self._send(200, data)

        def _cdx(self, query: dict) -> None:
            domain = query["url"][0]
            year = query["from"][0]
            filters = query.get("filter", [])
            rows = [["timestamp", "original", "mimetype", "statuscode"]]
            for ts, original, mime, status, _ in state.captures:
                host = urlsplit(original).hostname or ""
                if not ts.startswith(year) or not (host == domain or host.endswith("." + domain)):
                    continue
                if "statuscode:200" in filters and status != "200":
                    continue
                if "mimetype:text/html" in filters and mime != "text/html":
                    continue
                rows.append([ts, original, mime, status])
            rows = rows[: int(query.get("limit", ["100000"])[0]) + 1]
            self._send(200, json.dumps(rows).encode(), "application/json")

        def _capture(self, rest: str) -> None:
            stamp, _, original = rest.partition("id_/")
            for ts, url, mime, _status, body in state.captures:
                if ts == stamp and url == original:
                    return self._send(200, body, f"{mime}; charset=utf-8")
            return self._send(404, b"no capture", "text/plain")

    return Handler


@pytest.fixture
def archive_server():
    """A fresh archive server per test (its dicts are the test's fixture data)."""
    state = ArchiveServer()
    server = ThreadingHTTPServer((state.address, 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
