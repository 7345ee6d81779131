"""Shares per slice of the store, computed from the `page_stats` aggregates."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime

import numpy as np

from synthweb.estimate import Calibration, estimate_histogram
from synthweb.store import BINS, Store, store_calibration
from synthweb.twophase import Cells, estimate_cells

# SQL for each dimension a report can group by; unknown publication dates stay NULL.
DIMENSIONS = {
    "domain": "domain",
    "tld": "tld",
    "lang": "lang",
    "year": "if(day = toDate(0), NULL, toYear(day))",
    "month": "if(day = toDate(0), NULL, formatDateTime(day, '%Y-%m'))",
    "snapshot": "snapshot",
}


def parse_dimensions(text: str) -> list[str]:
    """Parse `--by domain,month`; raise ValueError naming the unknown dimension."""
    dims = [d.strip() for d in text.split(",") if d.strip()] if text else []
    for dim in dims:
        if dim not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dim!r}; choose among {', '.join(DIMENSIONS)}")
    return list(dict.fromkeys(dims))


CONTROL_BEFORE = "2022-12-01"  # pages published before ChatGPT's release: a human baseline
# A group with fewer documents is flagged `too_few`: tables show "too few (n=…)" instead of a share, charts leave
# it off the line (its interval is most of 0-100% and a lone 0% or 100% reads as a trend).
TOO_FEW_DOCUMENTS = 10
CONTROL_MIN_DOCUMENTS = 100  # a stratum's control replaces the lab FPR only with at least this many documents
_CONTROL = f"day != toDate(0) AND day < toDate('{CONTROL_BEFORE}')"
_DETECTOR = "detector = {detector:String} AND detector_version = {version:String}"


def _grouping(dims: list[str], extra: tuple[str, ...] = ()) -> tuple[list[str], str]:
    select = [f"{DIMENSIONS[d]} AS `{d}`" for d in dims] + [f"{e} AS `_{e}`" for e in extra]
    keys = [f"`{d}`" for d in dims] + [f"`_{e}`" for e in extra]
    return select, (f"GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}" if keys else "")


def share_report(
    store: Store, detector, dims: list[str], method: str | None = None, fpr_from: str = "lab", count: str = "documents"
) -> list[dict]:
    """One row per group: the dims, pages, documents, excluded (with reasons), and the share with its interval.

    `count="clusters"` counts each near-duplicate cluster once (one document of it per group, the one with the
    smallest content hash) instead of each document; `documents` is then the number of clusters. Rows gain
    `near_duplicate_documents` and `clusters` where `synthweb dedup` has run on the group's snapshots.

    `fpr_from="control"` takes the human score distribution of each (domain, lang) stratum from its
    pre-LLM pages where it has at least CONTROL_MIN_DOCUMENTS of them (the lab's elsewhere), mixed
    by the group's documents per stratum.
    """
    if fpr_from not in ("lab", "control"):
        raise ValueError(f"fpr_from must be 'lab' or 'control', not {fpr_from!r}")
    _check_count(store, count)
    if count == "clusters" and fpr_from != "lab":
        raise ValueError("--count clusters takes the lab's human score distribution (--fpr-from lab)")
    calibration = store_calibration(detector)
    params = {"detector": detector.name, "version": detector.version}
    select, group = _grouping(dims)
    sql = (
        f"SELECT {', '.join(select + [''])}sum(pages), sum(excluded), uniqExactMerge(documents), "
        f"uniqExactResampleMerge(0, {BINS}, 1)(hist) FROM page_stats WHERE {_DETECTOR} {group}"
    )
    _, rows = store.query(sql, params)
    reasons = _exclusions(store, dims, params)
    references = _control_references(store, dims, params, calibration) if fpr_from == "control" else {}
    spread = near_duplicate_counts(store, dims, params)
    per_cluster = _cluster_histograms(store, dims, params) if count == "clusters" else {}
    report = []
    for row in rows:
        *keys, pages, excluded, documents, hist = row
        if not dims and pages == 0:
            continue
        key = tuple(keys)
        if count == "clusters":
            hist = per_cluster.get(key, np.zeros(BINS, dtype=np.int64))
            documents = int(hist.sum())
        reference = references.get(key)
        estimate = estimate_histogram(np.asarray(hist), calibration, method, human=reference[:2] if reference else None)
        entry = dict(zip(dims, keys, strict=True))
        entry.update(
            pages=int(pages),
            documents=int(documents),
            excluded=int(excluded),
            excluded_by=reasons.get(key, {}),
            share=estimate.share,
            ci_low=estimate.ci_low,
            ci_high=estimate.ci_high,
            naive_share=estimate.naive,
            method=estimate.method,
            fit_p=estimate.fit_p,
            **spread.get(key, {}),
        )
        entry["too_few"] = entry["documents"] < TOO_FEW_DOCUMENTS
        if estimate.note:
            entry["note"] = estimate.note
        if fpr_from == "control":
            entry["fpr_source"] = reference[2] if reference else "lab"
        report.append(entry)
    return report


_BIN = f"least(toUInt8(floor(toFloat64(ifNull(p_synthetic, 0)) * {BINS} + 1e-4)), {BINS - 1})"  # as page_stats_mv


def two_phase_report(
    store: Store, fast, strong, dims: list[str], method: str | None = None, count: str = "documents"
) -> list[dict]:
    """One row per group, two-phase: the `strong` detector's share over the documents `fast` scored.

    The documents are the fast detector's (every page); the strong detector's scores of the sampled
    ones are weighted by their inclusion probabilities and post-stratified on the fast score
    (synthweb.twophase). Rows carry `strong_documents` beside `documents`. `count="clusters"`: as in
    share_report, each near-duplicate cluster is one unit (its document with the smallest content hash).
    """
    _check_count(store, count)
    calibration = store_calibration(strong)
    params = {"detector": fast.name, "version": fast.version, "strong": strong.name, "sversion": strong.version}
    counts = _group_counts(store, dims, params)
    select = [f"{DIMENSIONS[d]} AS `{d}`" for d in dims]
    keys = [f"`{d}`" for d in dims]
    ids = ["content_hash"] + ([] if "snapshot" in dims else ["snapshot"])
    documents = (
        f"SELECT {', '.join(select + ids)}, any({_BIN}) AS fbin "
        f"FROM (SELECT *, ifNull(published, toDate(0)) AS day FROM pages WHERE {_DETECTOR} AND excluded = '') "
        f"GROUP BY {', '.join(keys + ids)}"
    )
    if count == "clusters":  # one unit per cluster: its smallest document stands for it, sampled or not
        documents = (
            f"SELECT {', '.join(keys + ids[1:])}, min(member) AS content_hash, argMin(member_bin, member) AS fbin "
            f"FROM (SELECT d.*, d.content_hash AS member, d.fbin AS member_bin, if(n.cluster = '', d.content_hash, "
            f"n.cluster) AS cluster FROM ({documents}) AS d LEFT JOIN latest_near_duplicates AS n "
            "ON d.snapshot = n.snapshot AND d.content_hash = n.content_hash) "
            f"GROUP BY {', '.join(keys + ids[1:] + ['cluster'])}"
        )
    where_strong = "detector = {strong:String} AND detector_version = {sversion:String}"
    sampled = (
        f"SELECT snapshot, content_hash, 1 AS hit, any({_BIN}) AS sbin, max(inclusion) AS pi FROM pages "
        f"WHERE {where_strong} AND excluded = '' GROUP BY snapshot, content_hash"
    )
    raised = (
        f"SELECT snapshot, content_hash, max(inclusion) AS pi FROM sample_inclusion WHERE {where_strong} "
        "GROUP BY snapshot, content_hash"
    )
    by = ", ".join([f"f.{k}" for k in keys] + ["fbin", "sbin", "inclusion"])
    sql = (
        f"SELECT {', '.join([f'f.{k}' for k in keys] + [''])}fbin, if(s.hit = 1, toInt16(s.sbin), -1) AS sbin, "
        "if(s.hit = 1, greatest(s.pi, r.pi), 0) AS inclusion, count() "
        f"FROM ({documents}) AS f "
        f"LEFT JOIN ({sampled}) AS s ON f.snapshot = s.snapshot AND f.content_hash = s.content_hash "
        f"LEFT JOIN ({raised}) AS r ON f.snapshot = r.snapshot AND f.content_hash = r.content_hash "
        f"GROUP BY {by} ORDER BY {by}"
    )
    _, rows = store.query(sql, params)
    cells: dict[tuple, list] = {}
    for row in rows:
        cells.setdefault(tuple(row[: len(dims)]), []).append(row[len(dims) :])
    reasons = _exclusions(store, dims, params)
    spread = near_duplicate_counts(store, dims, params)
    report = []
    for key, (pages, excluded, documents_n) in counts.items():
        if not dims and pages == 0:
            continue
        units = Cells.from_rows(cells.get(key, []))
        estimate = estimate_cells(units, calibration, method)
        if count == "clusters":
            documents_n = units.documents
        entry = dict(zip(dims, key, strict=True))
        entry.update(
            pages=pages,
            documents=documents_n,
            strong_documents=estimate.strong_documents,
            excluded=excluded,
            excluded_by=reasons.get(key, {}),
            share=estimate.share,
            ci_low=estimate.ci_low,
            ci_high=estimate.ci_high,
            naive_share=estimate.naive,
            method=f"two-phase {estimate.method}",
            fit_p=estimate.fit_p,
            **spread.get(key, {}),
        )
        entry["too_few"] = entry["documents"] < TOO_FEW_DOCUMENTS
        if estimate.note:
            entry["note"] = estimate.note
        report.append(entry)
    return report


def _group_counts(store: Store, dims: list[str], params: dict) -> dict[tuple, tuple[int, int, int]]:
    """Per group of the detector's page_stats: (pages, excluded, documents)."""
    select, group = _grouping(dims)
    _, rows = store.query(
        f"SELECT {', '.join(select + [''])}sum(pages), sum(excluded), uniqExactMerge(documents) "
        f"FROM page_stats WHERE {_DETECTOR} {group}",
        params,
    )
    return {tuple(keys): (int(p), int(e), int(d)) for *keys, p, e, d in rows}


COUNT_UNITS = ("documents", "clusters")


def _check_count(store: Store, count: str) -> None:
    if count not in COUNT_UNITS:
        raise ValueError(f"count must be one of {', '.join(COUNT_UNITS)}, not {count!r}")
    if count == "clusters" and not deduplicated(store):
        raise ValueError("--count clusters needs near-duplicate clusters: run `synthweb dedup` first")


def deduplicated(store: Store) -> bool:
    """Whether `synthweb dedup` has run on any snapshot of the store."""
    _, rows = store.query("SELECT count() FROM (SELECT 1 FROM dedup_runs LIMIT 1)")
    return bool(rows[0][0])


# The detector's counted documents with their cluster (a document of its own where dedup found none).
_CLUSTERED = (
    "SELECT p.*, if(n.cluster = '', p.content_hash, n.cluster) AS cluster, n.cluster_domains AS cluster_domains "
    f"FROM (SELECT *, ifNull(published, toDate(0)) AS day, {_BIN} AS bin FROM pages WHERE {_DETECTOR} "
    "AND excluded = '') AS p "
    "LEFT JOIN latest_near_duplicates AS n ON p.snapshot = n.snapshot AND p.content_hash = n.content_hash"
)


def near_duplicate_counts(store: Store, dims: list[str], params: dict) -> dict[tuple, dict[str, int]]:
    """Per group of deduplicated snapshots: `near_duplicate_documents` (documents in a cluster that spans two or
    more domains) and `clusters` (distinct clusters, a document without near-duplicates being its own)."""
    if not deduplicated(store):
        return {}
    select, group = _grouping(dims)
    _, rows = store.query(
        f"SELECT {', '.join(select + [''])}uniqExactIf((snapshot, content_hash), cluster_domains > 1), "
        f"uniqExact((snapshot, cluster)) FROM ({_CLUSTERED}) "
        f"WHERE snapshot IN (SELECT snapshot FROM dedup_runs) {group}",
        params,
    )
    return {tuple(keys): {"near_duplicate_documents": int(n), "clusters": int(c)} for *keys, n, c in rows}


def _cluster_histograms(store: Store, dims: list[str], params: dict) -> dict[tuple, np.ndarray]:
    """Per group: the score histogram of one document per cluster (the smallest content hash)."""
    select, _ = _grouping(dims)
    keys = [f"`{d}`" for d in dims]
    _, rows = store.query(
        f"SELECT {', '.join(keys + ['fbin'])}, count() FROM (SELECT {', '.join(select + [''])}"
        f"argMin(bin, content_hash) AS fbin FROM ({_CLUSTERED}) GROUP BY {', '.join(keys + ['snapshot', 'cluster'])}) "
        f"GROUP BY {', '.join(keys + ['fbin'])}",
        params,
    )
    out: dict[tuple, np.ndarray] = {}
    for *key, fbin, n in rows:
        out.setdefault(tuple(key), np.zeros(BINS, dtype=np.int64))[int(fbin)] += int(n)
    return out


def has_rows(store: Store, detector) -> bool:
    """Whether the store holds pages scored by this detector name and version."""
    _, rows = store.query(
        f"SELECT count() FROM (SELECT 1 FROM page_stats WHERE {_DETECTOR} LIMIT 1)",
        {"detector": detector.name, "version": detector.version},
    )
    return bool(rows[0][0])


def _exclusions(store: Store, dims: list[str], params: dict) -> dict[tuple, dict[str, int]]:
    select, group = _grouping(dims, ("reason",))
    _, rows = store.query(
        f"SELECT {', '.join(select)}, sum(pages) FROM page_exclusions WHERE {_DETECTOR} {group}", params
    )
    out: dict[tuple, dict[str, int]] = {}
    for *keys, reason, pages in rows:
        out.setdefault(tuple(keys), {})[reason] = int(pages)
    return out


def _control_strata(store: Store, params: dict) -> dict[tuple, np.ndarray]:
    """Histogram of the pre-LLM documents of each (domain, lang) stratum."""
    _, rows = store.query(
        f"SELECT domain, lang, uniqExactResampleMerge(0, {BINS}, 1)(hist) FROM page_stats "
        f"WHERE {_DETECTOR} AND {_CONTROL} GROUP BY domain, lang",
        params,
    )
    return {(d, lang): np.asarray(h, dtype=float) for d, lang, h in rows}


def _control_references(store: Store, dims: list[str], params: dict, calibration: Calibration) -> dict:
    """Per group: (human reference counts, their effective documents, source) from control strata and lab.

    A group spanning strata gets sum_s w_s p_s, with w_s its share of documents in stratum s and p_s the
    stratum's control distribution (or the lab's), as counts over the documents seen, 1 / sum(w_s^2 / n_s);
    its effective size is the same sum over the lab's effective texts (it comes in article clusters), so
    the bootstrap spreads the reference as much as its sources warrant.
    """
    control = {s: h for s, h in _control_strata(store, params).items() if h.sum() >= CONTROL_MIN_DOCUMENTS}
    if not control:
        return {}
    lab = calibration.hist_human.astype(float)
    select, group = _grouping(dims, ("domain", "lang"))
    _, rows = store.query(
        f"SELECT {', '.join(select)}, uniqExactMerge(documents) FROM page_stats WHERE {_DETECTOR} {group}", params
    )
    weights: dict[tuple, dict] = {}
    for *keys, domain, lang, documents in rows:
        if documents:
            weights.setdefault(tuple(keys), {})[(domain, lang)] = float(documents)
    references = {}
    for key, strata in weights.items():
        total = sum(strata.values())
        mixed, variance, lab_weight = np.zeros(BINS), 0.0, 0.0
        for stratum, documents in strata.items():
            w = documents / total
            if stratum in control:
                mixed += w * control[stratum] / control[stratum].sum()
                variance += w * w / control[stratum].sum()
            else:
                mixed += w * lab / lab.sum()
                lab_weight += w
        if not any(stratum in control for stratum in strata):
            continue
        # The lab is one sample: its weight counts once, over its texts seen / its independent texts.
        seen = 1.0 / (variance + lab_weight**2 / lab.sum())
        effective = 1.0 / (variance + lab_weight**2 / calibration.n_human)
        source = "control" if all(stratum in control for stratum in strata) else "control+lab"
        references[key] = (mixed * seen, effective, source)
    return references


def control_report(store: Store, detector) -> list[dict]:
    """Per (domain, lang): the pre-LLM pages' positive rate, its Wilson 95% interval, and the lab FPR.

    `drift` flags strata whose lab FPR lies outside the control's interval: the detector's false-positive
    rate there is not the one it was calibrated with.
    """
    calibration = store_calibration(detector)
    k = calibration.threshold_bin
    tp, n_machine, fp, n_human = calibration.rates()
    lab_fpr = fp / n_human
    params = {"detector": detector.name, "version": detector.version}
    report = []
    for (domain, lang), hist in sorted(_control_strata(store, params).items()):
        n = int(hist.sum())
        if n == 0:
            continue
        positives = int(hist[k:].sum())
        low, high = wilson(positives, n)
        report.append(
            dict(
                domain=domain,
                lang=lang,
                control_documents=n,
                control_rate=positives / n,
                ci_low=low,
                ci_high=high,
                lab_fpr=lab_fpr,
                drift=not (low <= lab_fpr <= high),
                used=n >= CONTROL_MIN_DOCUMENTS,
            )
        )
    return report


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval for a binomial proportion k / n."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


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


PERCENT = {
    "share", "ci_low", "ci_high", "naive_share", "control_rate", "lab_fpr", "domain_share", "document_share",
    "near_duplicate_rate",
}  # fmt: skip
COUNTS = {
    "pages", "documents", "strong_documents", "excluded", "control_documents", "n_human", "n_machine", "min_words",
    "near_duplicate_documents", "clusters", "domains",
}  # fmt: skip
NUMERIC = PERCENT | COUNTS | {"auroc", "tpr@1%fpr", "tpr@5%fpr", "fit_p"}
MISFIT_P = 0.05  # a fit_p below this marks a row that no mixture of the reference classes explains


def render_table(rows: list[dict], columns: list[str], title: str | None = None) -> None:
    """Print an aligned table for people (shares as percentages)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for column in columns:
        numeric = column in NUMERIC
        table.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(column, row.get(column), row) for column in columns))
    Console(width=200).print(table)


def _cell(column: str, value, row: dict | None = None) -> str:
    if row and row.get("too_few") and column in ("share", "ci_low", "ci_high", "naive_share"):
        return f"too few (n={row.get('documents')})" if column == "share" else "—"
    if value is None:
        return "—"
    if column in PERCENT:
        return f"{100 * value:.1f}%"
    if column == "excluded" and row and row.get("excluded_by"):
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(row["excluded_by"].items()))
        return f"{value} ({reasons})"
    if column == "fit_p":
        return f"{value:.3f}" + (" MISFIT" if value < MISFIT_P else "")
    if isinstance(value, bool):
        return "DRIFT" if column == "drift" and value else ("yes" if value else "no")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(_plain(value))
