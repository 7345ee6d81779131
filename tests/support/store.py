"""Helpers for the in-process store tests (one chDB path per process: see tests/synthweb/conftest.py)."""

from synthweb.store import Store

TABLES = (
    "pages", "skipped_pages", "page_stats", "page_exclusions", "sample_inclusion", "detector_calibrations",
    "minhash_signatures", "dedup_runs", "near_duplicates",
)  # fmt: skip


def score_two_phase(store: Store, pages: list, rate: float) -> tuple:
    """Empty the store, then score `pages` two-phase into it (hashed on every page, lexical at `rate`) through
    the real stages; return (fast, strong)."""
    from detectors.runtime import load_detector
    from synthweb.pipeline import Pipeline
    from synthweb.sampling import StrongRate
    from synthweb.score import ScoreStage
    from synthweb.store import StoreStage

    clear(store)
    fast, strong = load_detector("hashed"), load_detector("lexical")
    for detector in (fast, strong):
        store.record_calibration(detector)
    stage = ScoreStage(fast, batch_size=16, strong=strong, rate=StrongRate(rate))
    Pipeline([stage, StoreStage(store)]).process(pages)
    return fast, strong


def clear(store: Store) -> None:
    """Empty every table the store tests write."""
    for table in TABLES:
        store.client.command(f"TRUNCATE TABLE {table}")
