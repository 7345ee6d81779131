"""Run inside a loopback-only network namespace (`unshare -rn`, see test_netns.py): a local site that redirects to
a cloud metadata address, plus seeds naming metadata services, crawled with private networks allowed.

Prints one JSON object: {"outside_reachable": bool, "requests": [paths the site saw], "summary", "pages"}.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.crawl import crawl_in_subprocess  # noqa: E402

METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def loopback_up() -> None:
    """`ip link set lo up` without iproute2: SIOCGIFFLAGS / SIOCSIFFLAGS on lo (the namespace's only interface)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sh", fcntl.ioctl(sock, 0x8913, struct.pack("16sh", b"lo", 0)))[1]
    fcntl.ioctl(sock, 0x8914, struct.pack("16sh", b"lo", flags | 0x1))
    sock.close()


def outside_reachable() -> bool:
    """Whether anything beyond loopback can be reached (it must not be, for this test to be safe)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routable only if a default route exists
        return True
    except OSError:
        return False


def main() -> None:
    loopback_up()
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requested.append(self.path)
            if self.path == "/":
                self.send_response(302)
                self.send_header("Location", METADATA_URL)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"User-agent: *\n" if self.path == "/robots.txt" else b"<html><body>nothing</body></html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.6", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seeds = [
        f"http://127.0.0.6:{server.server_port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
    ]
    settings = {"SYNTHWEB_ALLOW_PRIVATE_NETWORKS": True, "SYNTHWEB_SITEMAPS": False, "DOWNLOAD_DELAY": 0.01,
                "RETRY_TIMES": 0, "DOWNLOAD_TIMEOUT": 5}  # fmt: skip
    summary, pages = crawl_in_subprocess(seeds, settings, timeout=120)
    server.shutdown()
    print(json.dumps({"outside_reachable": outside_reachable(), "requests": requested, "summary": summary,
                      "pages": pages}))  # fmt: skip


if __name__ == "__main__":
    main()
