"""Seed parsing for `synthweb run`: URLs, bare domains, and @FILE lists."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")


class SeedError(ValueError):
    """A seed that is not a URL or domain we can crawl."""


def normalize_seed(seed: str) -> str:
    """Return an absolute http(s) URL for a URL or a bare domain, or raise SeedError."""
    text = seed.strip()
    if "://" not in text:
        if not HOSTNAME.match(text.lower().rstrip(".")) or "." not in text:
            raise SeedError(f"malformed seed {seed!r}: expected an http(s) URL or a domain name")
        return f"https://{text.lower().rstrip('.')}/"
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise SeedError(f"malformed seed {seed!r}: {exc}") from exc
    if "@" in parts.netloc:  # never sent, stored or logged: refused before anything is fetched
        shown = parts._replace(netloc="…@" + parts.netloc.rpartition("@")[2]).geturl()
        raise SeedError(f"seed {shown!r} carries credentials (user:password@): remove them; synthweb never sends any")
    if parts.scheme.lower() not in ("http", "https"):
        raise SeedError(f"malformed seed {seed!r}: only http and https URLs can be crawled")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise SeedError(f"malformed seed {seed!r}: {exc}") from exc
    host = parts.hostname or ""
    if not host or not (HOSTNAME.match(host) or _is_ip(host)):
        raise SeedError(f"malformed seed {seed!r}: no valid host name")
    # Scheme and host are case-insensitive: one spelling, so "HTTP://Example.com" is the same site as its
    # lowercase twin (found by tests/synthweb/test_fuzz.py).
    url = parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()
    return url if parts.path else url + "/"


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_seeds(items: list[str]) -> list[str]:
    """Expand `@FILE` items (one URL or domain per line, # comments) and normalise every seed."""
    seeds: list[str] = []
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:])
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise SeedError(f"cannot read seed file {path}: {exc.strerror or exc}") from exc
            except UnicodeDecodeError as exc:
                raise SeedError(f"seed file {path} is not UTF-8 (byte {exc.start}): save it as UTF-8") from exc
            entries = [line.split("#", 1)[0].strip() for line in lines]
            seeds.extend(normalize_seed(e) for e in entries if e)
        else:
            seeds.append(normalize_seed(item))
    if not seeds:
        raise SeedError("no seeds given")
    return list(dict.fromkeys(seeds))
