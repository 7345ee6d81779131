"""Shares per slice of the store, computed from the `page_stats` aggregates."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime

import numpy as np

from synthweb.estimate import Calibration, adjusted_count
from synthweb.store import Store

# SQL for each dimension a report can group by; unknown publication dates stay NULL.
DIMENSIONS = {
    "domain": "domain",
    "tld": "tld",
    "lang": "lang",
    "year": "if(day = toDate(0), NULL, toYear(day))",
    "month": "if(day = toDate(0), NULL, formatDateTime(day, '%Y-%m'))",
    "snapshot": "snapshot",
}
BINS = 50  # must match the Resample range in schemas/clickhouse/003_page_stats.sql


def parse_dimensions(text: str) -> list[str]:
    """Parse `--by domain,month`; raise ValueError naming the unknown dimension."""
    dims = [d.strip() for d in text.split(",") if d.strip()] if text else []
    for dim in dims:
        if dim not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dim!r}; choose among {', '.join(DIMENSIONS)}")
    return list(dict.fromkeys(dims))


def share_report(store: Store, detector, dims: list[str]) -> list[dict]:
    """One row per group: the dims, pages, documents, excluded, and the ACC share with its interval."""
    calibration = Calibration.from_dict(detector.calibration)
    if calibration.bins != BINS:
        raise ValueError(f"detector {detector.name} calibrates on {calibration.bins} bins; the store keeps {BINS}")
    select = [f"{DIMENSIONS[d]} AS `{d}`" for d in dims]
    group = f"GROUP BY {', '.join(f'`{d}`' for d in dims)} ORDER BY {', '.join(f'`{d}`' for d in dims)}"
    sql = (
        f"SELECT {', '.join(select + [''])}sum(pages), sum(excluded), uniqExactMerge(documents), "
        f"uniqExactResampleMerge(0, {BINS}, 1)(hist) FROM page_stats "
        "WHERE detector = {detector:String} AND detector_version = {version:String} " + (group if dims else "")
    )
    _, rows = store.query(sql, {"detector": detector.name, "version": detector.version})
    report = []
    for row in rows:
        *keys, pages, excluded, documents, hist = row
        if not dims and pages == 0:
            continue
        estimate = adjusted_count(np.asarray(hist), calibration)
        entry = dict(zip(dims, keys, strict=True))
        entry.update(
            pages=int(pages),
            documents=int(documents),
            excluded=int(excluded),
            share=estimate.share,
            ci_low=estimate.ci_low,
            ci_high=estimate.ci_high,
            naive_share=estimate.naive,
            method=estimate.method,
        )
        report.append(entry)
    return report


def _plain(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def to_json(rows: list[dict]) -> str:
    return json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], indent=2, ensure_ascii=False)


def to_csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _plain(row.get(k)) for k in columns})
    return out.getvalue()


def render_table(rows: list[dict], columns: list[str], title: str | None = None) -> None:
    """Print an aligned table for people (shares as percentages)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for column in columns:
        numeric = column in {"pages", "documents", "excluded", "share", "ci_low", "ci_high", "naive_share"}
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(column, row.get(column)) for column in columns))
    Console(width=200).print(table)


def _cell(column: str, value) -> str:
    if value is None:
        return "—"
    if column in {"share", "ci_low", "ci_high", "naive_share"}:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(_plain(value))
