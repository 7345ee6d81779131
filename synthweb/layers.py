"""The two layers of the web: each domain in each period is `synthetic`, `human` or `uncertain`.

A domain's layer in a period is decided by its share's 95% interval against a cut (default 0.5): above
the cut, `synthetic`; below, `human`; straddling it, or without an estimate, `uncertain`. The interval
decides, not the point estimate, so a domain with few documents stays uncertain instead of flipping
between layers on noise. Input rows are `report` rows grouped by (period, domain).
"""

from __future__ import annotations

LAYERS = ("human", "uncertain", "synthetic")
PERIODS = ("snapshot", "year", "month")
UNKNOWN = "unknown"  # the period of pages without a publication date, under --by year|month


def layer_of(row: dict, cut: float = 0.5) -> str:
    """The layer of one (period, domain) report row."""
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None or row.get("share") is None:
        return "uncertain"
    if low > cut:
        return "synthetic"
    if high < cut:
        return "human"
    return "uncertain"


def domain_layers(rows: list[dict], period: str, cut: float = 0.5) -> list[dict]:
    """One entry per (period, domain): its layer, documents, share and interval, near-duplicate documents."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    if not 0 < cut < 1:
        raise ValueError(f"cut must lie in (0, 1), not {cut}")
    out = []
    for row in rows:
        if not row.get("documents"):
            continue
        value = row.get(period)
        out.append(
            {
                "period": UNKNOWN if value is None else str(value),
                "domain": row["domain"],
                "layer": layer_of(row, cut),
                "documents": int(row["documents"]),
                "near_duplicate_documents": row.get("near_duplicate_documents"),
                "share": row.get("share"),
                "ci_low": row.get("ci_low"),
                "ci_high": row.get("ci_high"),
            }
        )
    return sorted(out, key=lambda e: (e["period"] == UNKNOWN, e["period"], e["domain"]))


def summarize(entries: list[dict]) -> list[dict]:
    """Per period and layer: domains, documents, their shares of the period's totals, near-duplicate rate.

    `near_duplicate_rate` is the layer's documents that share a cluster with another domain's, over its
    documents (None where `synthweb dedup` has not run).
    """
    periods: dict[str, list[dict]] = {}
    for entry in entries:
        periods.setdefault(entry["period"], []).append(entry)
    out = []
    for period, members in periods.items():
        total_domains = len(members)
        total_documents = sum(e["documents"] for e in members)
        for layer in LAYERS:
            chosen = [e for e in members if e["layer"] == layer]
            documents = sum(e["documents"] for e in chosen)
            counted = [e["near_duplicate_documents"] for e in chosen if e["near_duplicate_documents"] is not None]
            near = sum(counted) / documents if documents and len(counted) == len(chosen) else None
            out.append(
                {
                    "period": period,
                    "layer": layer,
                    "domains": len(chosen),
                    "documents": documents,
                    "domain_share": len(chosen) / total_domains if total_domains else 0.0,
                    "document_share": documents / total_documents if total_documents else 0.0,
                    "near_duplicate_rate": near,
                }
            )
    return out


def transitions(entries: list[dict], examples: int = 5) -> list[dict]:
    """For consecutive periods, the domains that changed layer, grouped by (from, to).

    Only domains present in both periods count; the unknown period is left out.
    """
    layers: dict[str, dict[str, str]] = {}
    for entry in entries:
        if entry["period"] != UNKNOWN:
            layers.setdefault(entry["period"], {})[entry["domain"]] = entry["layer"]
    ordered = sorted(layers)
    out = []
    for before, after in zip(ordered, ordered[1:], strict=False):
        moves: dict[tuple[str, str], list[str]] = {}
        for domain, layer in layers[before].items():
            new = layers[after].get(domain)
            if new is not None and new != layer:
                moves.setdefault((layer, new), []).append(domain)
        for (old, new), domains in sorted(moves.items()):
            out.append(
                {
                    "from_period": before,
                    "to_period": after,
                    "from": old,
                    "to": new,
                    "domains": len(domains),
                    "examples": sorted(domains)[:examples],
                }
            )
    return out


TABLE_COLUMNS = [
    "recorded", "period_kind", "period", "domain", "layer", "cut", "documents", "near_duplicate_documents",
    "share", "ci_low", "ci_high", "detector",
]  # fmt: skip


def record(store, entries: list[dict], period: str, cut: float, detector: str) -> int:
    """Write the (period, domain) entries to the store's `domain_layers` table, for dashboards; return how many."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = [
        [now, period, e["period"], e["domain"], e["layer"], cut, e["documents"], e["near_duplicate_documents"],
         e["share"], e["ci_low"], e["ci_high"], detector]
        for e in entries
    ]  # fmt: skip
    if rows:
        store.insert("domain_layers", rows, TABLE_COLUMNS)
    return len(rows)
