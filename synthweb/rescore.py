"""Re-score stored text with another detector (or version) and store the new rows beside the old.

Stored pages keep their main text, so a better detector back-fills the whole history
without recrawling: the rows are read back as `Page`s and run through the same score and
store stages. A page already scored by this detector name and version is never scored
again, so a rerun (or a resumed, interrupted one) adds nothing twice.

`sample` R < 1 scores only the documents whose sample key (synthweb.sampling) is below R, with
inclusion probability R: the strong phase of two-phase scoring, done later (say on a GPU fleet). The
documents the detector already scored at a lower rate are raised to R first (`sample_inclusion`),
since the key picks a superset; an interrupted run leaves picks unscored in URL order, which a rerun
completes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from synthweb.driver import Batch, Progress, drive
from synthweb.pipeline import Page, Pipeline
from synthweb.sampling import SAMPLE_KEY_SQL
from synthweb.score import ScoreStage
from synthweb.store import PAGE_COLUMNS, Store, StoreStage

HASH = PAGE_COLUMNS.index("content_hash")  # rows are keyed by (snapshot, url, content_hash)
ROUND_ROWS = 2048  # rows read per query; each round re-reads what is still missing


class RescoreError(Exception):
    """A bad --where condition, or a round that made no progress."""


def check_where(where: str) -> str:
    """`where` if it is one expression that stays inside the parentheses it is put in; RescoreError otherwise.

    Outside quoted strings and names it may not close a parenthesis it did not open, end with one open,
    separate statements (;) or start a comment (--, #, /*): any of these would let it change the command's
    own conditions (the one that never scores a page twice), not only select pages.
    """
    depth, quote, i = 0, "", 0
    while i < len(where):
        ch = where[i]
        if quote:
            if ch == "\\":
                i += 1  # the escaped character
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise RescoreError(f"bad --where condition: it closes a parenthesis it did not open (at {i})")
        elif ch == ";" or where.startswith(("--", "/*"), i) or ch == "#":
            raise RescoreError(f"bad --where condition: one expression only, no ';' or comments (at {i})")
        i += 1
    if quote or depth:
        raise RescoreError("bad --where condition: " + ("an unclosed quote" if quote else "an unclosed parenthesis"))
    return where


def _picked(where: str, sample: float) -> str:
    """The conditions on `pages` rows of the documents to score: --where, and the sample key below the rate."""
    condition = f"AND ({check_where(where)})" if where.strip() else ""
    return condition + (f" AND {SAMPLE_KEY_SQL} < {{rate:Float64}}" if sample < 1.0 else "")


def _todo_sql(where: str, columns: str, limit: str = "", sample: float = 1.0) -> str:
    return (
        f"SELECT {columns} FROM pages WHERE text != '' {_picked(where, sample)} "
        "AND NOT (detector = {name:String} AND detector_version = {version:String}) "
        "AND (snapshot, url, content_hash) NOT IN (SELECT snapshot, url, content_hash FROM pages "
        "WHERE detector = {name:String} AND detector_version = {version:String}) "
        f"{limit}"
    )


def pending(store: Store, detector, where: str = "", sample: float = 1.0) -> int:
    """How many distinct stored pages (snapshot, url, content) still lack this detector's score."""
    params = {"name": detector.name, "version": detector.version, "rate": sample}
    try:
        _, rows = store.query(
            f"SELECT count() FROM ({_todo_sql(where, 'DISTINCT snapshot, url, content_hash', sample=sample)})",
            params,
            readonly=True,
        )
    except RescoreError:
        raise
    except Exception as exc:
        raise RescoreError(f"bad --where condition: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
    return int(rows[0][0])


def rescore(
    store: Store, detector, where: str = "", batch_size: int = 64, show_progress: bool = False, sample: float = 1.0
) -> dict:
    """Score every matching stored page (with `sample` < 1: every picked one) that lacks `detector`'s
    name+version; return counts."""
    if not 0.0 < sample <= 1.0:
        raise RescoreError(f"--sample must be in (0, 1], not {sample}")
    todo = pending(store, detector, where, sample)
    store.record_calibration(detector)  # SQL's shares for the new rows (the store stage does it from settings)
    raised = _raise_inclusion(store, detector, where, sample)
    pipeline = Pipeline([ScoreStage(detector, batch_size), StoreStage(store)])
    params = {"name": detector.name, "version": detector.version, "rate": sample}
    columns = ", ".join(f"`{c}`" for c in PAGE_COLUMNS)
    key = "snapshot, url, content_hash"
    sql = _todo_sql(where, columns, f"ORDER BY {key} LIMIT 1 BY {key} LIMIT {ROUND_ROWS}", sample)

    def batches(progress: Progress):
        task = progress.task(f"rescore {detector.name} v{detector.version}", todo, per_page=True)
        previous: set[tuple] = set()
        while True:  # each round reads what is still missing, so an interrupted rescore resumes
            _, rows = store.query(sql, params, readonly=True)
            if not rows:
                return
            keys = {(r[0], r[1], r[HASH]) for r in rows}
            if keys == previous:  # nothing stored last round: do not loop forever
                raise RescoreError("re-scored rows were not stored; is the store read-only?")
            previous = keys
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                pages = [_page(dict(zip(PAGE_COLUMNS, row, strict=True)), sample) for row in chunk]
                yield Batch(pages, token=_token(detector, pages), task=task)

    with Progress(show_progress, kept="rescored") as progress:
        tally = drive(batches(progress), pipeline, progress)
    return {"detector": detector.name, "version": detector.version, "sample": sample, "pending": todo,
            "rescored": tally.pages, "excluded": tally.excluded, "raised": raised}  # fmt: skip


def _raise_inclusion(store: Store, detector, where: str, sample: float) -> int:
    """Lift the documents this detector already scored at a rate below `sample` to it; how many."""
    params = {"name": detector.name, "version": detector.version, "rate": sample}
    docs = (
        "FROM pages WHERE detector = {name:String} AND detector_version = {version:String} "
        "AND inclusion < {rate:Float64} AND (snapshot, content_hash) IN "
        f"(SELECT snapshot, content_hash FROM pages WHERE text != '' {_picked(where, sample)}) "
        "GROUP BY snapshot, content_hash"
    )
    _, rows = store.query(f"SELECT count() FROM (SELECT 1 {docs})", params, readonly=True)
    if rows[0][0]:
        store.client.command(
            "INSERT INTO sample_inclusion (detector, detector_version, snapshot, content_hash, inclusion) "
            f"SELECT {{name:String}}, {{version:String}}, snapshot, content_hash, {{rate:Float64}} {docs}",
            parameters=params,
        )
    return int(rows[0][0])


def _page(values: dict[str, Any], inclusion: float) -> Page:
    page = Page(**values)
    page.p_synthetic, page.excluded, page.detector, page.detector_version = None, "", "", ""
    page.inclusion, page.strong = inclusion, None
    return page


def _token(detector, pages: list[Page]) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for page in pages:
        digest.update(f"{page.snapshot}\0{page.url}\0{page.content_hash}\n".encode())
    return f"rescore:{detector.name}:{detector.version}:{digest.hexdigest()}"
