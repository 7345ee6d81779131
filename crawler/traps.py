"""Crawler-trap guards: URL shapes that generate pages without end."""

from __future__ import annotations

from collections import Counter, defaultdict
from urllib.parse import urlsplit


class TrapGuard:
    """Decides whether a discovered URL may be followed.

    Refuses a path that repeats one segment more than `max_segment_repeats` times
    (/a/a/a/..., relative-link loops) and more than `max_query_variants` distinct
    query strings for one host+path (calendars, session ids, faceted search).
    State is per crawl; a query string already admitted stays admitted.
    """

    def __init__(self, max_segment_repeats: int = 2, max_query_variants: int = 8):
        self.max_segment_repeats = max_segment_repeats
        self.max_query_variants = max_query_variants
        self._queries: dict[str, set[str]] = defaultdict(set)

    @classmethod
    def from_settings(cls, settings) -> TrapGuard:
        return cls(
            settings.getint("SYNTHWEB_MAX_SEGMENT_REPEATS", 2),
            settings.getint("SYNTHWEB_MAX_QUERY_VARIANTS", 8),
        )

    def refuse_reason(self, url: str) -> str:
        """ "" when `url` may be followed, else why not ("repeated_segment", "query_variants")."""
        parts = urlsplit(url)
        segments = [s for s in parts.path.split("/") if s]
        if segments and max(Counter(segments).values()) > self.max_segment_repeats:
            return "repeated_segment"
        if parts.query:
            key = f"{(parts.hostname or '').lower()}:{parts.port or ''}{parts.path}"
            seen = self._queries[key]
            if parts.query not in seen:
                if len(seen) >= self.max_query_variants:
                    return "query_variants"
                seen.add(parts.query)
        return ""

    def allows(self, url: str) -> bool:
        return not self.refuse_reason(url)
