"""Run every SQL query of the provisioned Grafana dashboards on a chDB store filled with known pages.

A separate process (chDB allows one on-disk store per process, and the store tests own theirs).
Usage: python tests/infra/dashboard_queries.py STORE_DIR; prints JSON: {"queries": {where: [rows]},
"report": <synthweb report --by snapshot rows>}.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_checks import DASHBOARDS, doc_sql_statements, grafana_constants, grafana_queries  # noqa: E402

from detectors.runtime import load_detector  # noqa: E402
from synthweb.dedup import dedup  # noqa: E402
from synthweb.layers import domain_layers, record  # noqa: E402
from synthweb.pipeline import Page  # noqa: E402
from synthweb.report import share_report  # noqa: E402
from synthweb.store import Store  # noqa: E402

SNAPSHOTS = ("weekly-1", "weekly-2")


def pages() -> list[Page]:
    """Two snapshots, two TLDs, two publication months, scores spread so shares differ per slice."""
    out = []
    for s, snapshot in enumerate(SNAPSHOTS):
        for i in range(40):
            domain = "a.example" if i % 2 else "b.test"
            out.append(
                Page(
                    url=f"https://{domain}/{snapshot}/{i}",
                    snapshot=snapshot,
                    host=domain,
                    domain=domain,
                    tld=domain.rsplit(".", 1)[1],
                    lang="en",
                    text="word " * 80,
                    content_hash=f"{snapshot}-{i}",
                    word_count=80,
                    detector="hashed",
                    detector_version="1",
                    p_synthetic=min(0.99, ((i * 7) % 40) / 40 + 0.3 * s),
                    published=date(2025, 1 + i % 3, 15) if i % 5 else None,
                    excluded="short" if i % 9 == 0 else "",
                    fetched_at=datetime(2026, 1, 2, tzinfo=UTC),
                )
            )
    out.append(Page(url="https://b.test/huge", snapshot="weekly-1", domain="b.test", skip="too_large"))
    return out


def substitute(sql: str, constants: dict[str, str]) -> str:
    """Grafana's variables and the ClickHouse plugin's $__timeFilter macro, as Grafana would expand them."""
    values = {"detector": "hashed", "version": "1", **constants}
    sql = sql.replace("${snapshot:singlequote}", ", ".join(f"'{s}'" for s in SNAPSHOTS))
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= toDateTime('2000-01-01 00:00:00') AND \1 <= now()", sql)
    sql = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], sql)
    if "$" in sql:
        raise ValueError(f"unexpanded Grafana macro in: {sql}")
    return sql


def main(store_dir: str) -> int:
    store = Store(f"chdb:///{store_dir}")
    store.migrate()
    detector = load_detector("hashed")
    store.record_calibration(detector)  # as the store stage does for the detector it is configured with
    batch = pages()
    store.insert_pages([p for p in batch if not p.skip])
    store.insert_skips([p for p in batch if p.skip])
    # What the hourly job writes: clusters (`synthweb dedup`) and the layers panel's rows (`layers --record`).
    dedup(store)
    record(store, domain_layers(share_report(store, detector, ["snapshot", "domain"]), "snapshot"), "snapshot", 0.5,
           "hashed v1")  # fmt: skip
    constants: dict[str, str] = {}
    for path in DASHBOARDS.glob("*.json"):
        constants.update(grafana_constants(path))
    results = {}
    for where, sql in grafana_queries():
        columns, rows = store.query(substitute(sql, constants))
        results[where] = [
            dict(zip(columns, [str(v) if isinstance(v, date) else v for v in row], strict=True)) for row in rows
        ]
    for where, sql in doc_sql_statements():
        columns, rows = store.query(sql)
        results[f"{where}: {sql[:60]}"] = [dict(zip(columns, row, strict=True)) for row in rows]
    report = share_report(store, detector, ["snapshot"], method="pacc")  # Grafana computes PACC in SQL
    print(json.dumps({"queries": results, "report": report}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
