"""Helpers for the in-process store tests (one chDB path per process: see tests/synthweb/conftest.py)."""

from synthweb.store import Store

TABLES = (
    "pages", "skipped_pages", "page_stats", "page_exclusions", "sample_inclusion", "detector_calibrations",
    "minhash_signatures", "dedup_runs", "near_duplicates",
)  # fmt: skip


def clear(store: Store) -> None:
    """Empty every table the store tests write."""
    for table in TABLES:
        store.client.command(f"TRUNCATE TABLE {table}")
