"""Query commands: `report` (shares per slice, control groups, charts) and `sql`."""

from __future__ import annotations

import argparse
import sys

from synthweb.cli.common import (
    CliError,
    db_option,
    detector_option,
    load_detector,
    method_option,
    open_store,
    require_extra,
    settings_for,
)

# Statements that change a store; the session is read-only anyway, this only names the refusal early.
WRITES = frozenset(
    "INSERT CREATE DROP ALTER TRUNCATE RENAME OPTIMIZE SYSTEM DELETE UPDATE ATTACH DETACH EXCHANGE UNDROP "
    "GRANT REVOKE BACKUP RESTORE MOVE".split()
)
REPORT_COLUMNS = ["pages", "documents", "excluded", "share", "ci_low", "ci_high", "naive_share", "fit_p"]
CONTROL_COLUMNS = [
    "domain", "lang", "control_documents", "control_rate", "ci_low", "ci_high", "lab_fpr", "drift", "used",
]  # fmt: skip


def register(sub) -> None:
    report = sub.add_parser("report", help="machine-written share per slice, with 95%% intervals")
    report.add_argument("--by", default="", metavar="DIMS", help="comma-separated: domain,tld,lang,year,month,snapshot")
    report.add_argument("--format", choices=["table", "json", "csv"], default="table")
    method_option(report)
    report.add_argument(
        "--fpr-from",
        choices=["lab", "control"],
        default="lab",
        help="human score distribution: the detector's calibration (lab), or per (domain, lang) the pages "
        "published before 2022-12-01 where a stratum has at least 100 of them (control)",
    )
    report.add_argument(
        "--control",
        action="store_true",
        help="show the pre-LLM control group per (domain, lang): its positive rate beside the lab FPR, flagging drift",
    )
    report.add_argument(
        "--chart", default=None, metavar="FILE", help="draw the share per month to FILE (.png, .svg or .html)"
    )
    report.add_argument(
        "--count",
        choices=["documents", "clusters"],
        default="documents",
        help="unit of the share: each distinct document, or each near-duplicate cluster once (a text spun across "
        "40 sites is one piece of writing; needs `synthweb dedup`)",
    )
    db_option(report)
    detector_option(report, several=True)
    report.set_defaults(run=cmd_report)

    sql = sub.add_parser("sql", help="run SQL on the store")
    sql.add_argument("query", metavar="QUERY")
    sql.add_argument("--format", choices=["table", "json"], default="table")
    sql.add_argument("--write", action="store_true", help="allow statements that change the store (read-only without)")
    db_option(sql)
    sql.set_defaults(run=cmd_sql)


def cmd_report(args: argparse.Namespace) -> int:
    from synthweb.report import control_report, parse_dimensions, render_table, share_report, to_csv, to_json

    try:
        dims = parse_dimensions(args.by)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    settings = settings_for(args)
    store = open_store(settings, must_exist=True)
    if args.control:
        detector = load_detector(settings, models=False)
        try:
            rows = control_report(store, detector)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        if args.format == "json":
            print(to_json(rows))
        elif args.format == "csv":
            print(to_csv(rows, CONTROL_COLUMNS), end="")
        else:
            title = f"pre-LLM control (published before 2022-12-01), detector {detector.name} v{detector.version}"
            render_table(rows, CONTROL_COLUMNS, title=title)
        return 0
    # --detector (one or several), --chart and control references: the single-detector report.
    single = args.detector or args.chart or args.fpr_from != "lab"
    two_phase = None if single else two_phase_rows(settings, store, dims, args.method, args.count)
    if two_phase is not None:
        return _print_rows(args, two_phase, [*dims, "strong_documents", *REPORT_COLUMNS, *_cluster_columns(two_phase)])
    names = [n.strip() for n in (args.detector or "").split(",") if n.strip()] or [None]
    rows = []
    detectors = [load_detector(settings_for(args, SYNTHWEB_DETECTOR=name), models=False) for name in names]
    label = ", ".join(f"{d.name} v{d.version}" for d in detectors)
    if args.chart:
        return _write_chart(args, store, detectors, dims, label)
    for detector in detectors:  # several detectors (or versions): rows side by side, to compare them
        tag = {"detector": detector.name, "version": detector.version} if len(names) > 1 else {}
        try:
            found = share_report(store, detector, dims, method=args.method, fpr_from=args.fpr_from, count=args.count)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        rows += [{**tag, **row} for row in found]
    columns = (["detector", "version"] if len(names) > 1 else []) + [*dims, *REPORT_COLUMNS]
    columns += ["fpr_source"] if args.fpr_from == "control" else []
    columns += _cluster_columns((rows, ""))
    return _print_rows(args, (rows, label), columns)


def _cluster_columns(found: tuple[list[dict], str]) -> list[str]:
    """The near-duplicate columns, where `synthweb dedup` gave the rows them."""
    return ["near_duplicate_documents", "clusters"] if any("clusters" in row for row in found[0]) else []


def two_phase_rows(
    settings, store, dims: list[str], method: str | None = None, count: str = "documents"
) -> tuple[list[dict], str] | None:
    """The two-phase report's (rows, label) where it applies: a fast detector configured, other than
    SYNTHWEB_DETECTOR, whose pages are in the store; else None (the single-detector report applies)."""
    from synthweb.report import has_rows, two_phase_report

    fast_name = settings.get("SYNTHWEB_FAST_DETECTOR")
    strong = load_detector(settings, models=False)
    if not fast_name or fast_name == strong.name:
        return None
    fast = load_detector(settings, "SYNTHWEB_FAST_DETECTOR", models=False)
    if not has_rows(store, fast):
        return None
    try:
        rows = two_phase_report(store, fast, strong, dims, method=method, count=count)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    return rows, f"{strong.name} v{strong.version} on a sample, {fast.name} v{fast.version} on every page"


def _print_rows(args, found: tuple[list[dict], str], columns: list[str]) -> int:
    from synthweb.report import render_table, to_csv, to_json

    rows, label = found
    if args.format == "json":
        print(to_json(rows))
    elif args.format == "csv":
        print(to_csv(rows, columns), end="")
    else:
        methods = ", ".join(sorted({row["method"] for row in rows})) or args.method or "no rows"
        render_table(rows, columns, title=f"machine-written share ({methods}), detector {label}")
    return 0


def _write_chart(args, store, detectors, dims: list[str], label: str) -> int:
    """--chart FILE: share per month, one line per detector and per --by domain|tld group."""
    from synthweb.chart import chart_format, write_chart
    from synthweb.report import share_report

    groups = [d for d in dims if d in ("domain", "tld")]
    if set(dims) - {"domain", "tld", "month"}:
        raise CliError("--chart draws months; --by may add domain or tld")
    try:
        if chart_format(args.chart) != "html":
            require_extra("charts", f"a .{chart_format(args.chart)} chart")
        rows = []
        for detector in detectors:
            tag = {"detector": f"{detector.name} v{detector.version}"}
            found = share_report(store, detector, ["month", *groups], method=args.method, fpr_from=args.fpr_from)
            rows += [{**tag, **r} for r in found]
        keys = (["detector"] if len(detectors) > 1 else []) + groups
        path = write_chart(args.chart, rows, keys, f"machine-written share per month, detector {label}")
    except (OSError, ValueError) as exc:  # a ChartError, or a detector that cannot give shares
        raise CliError(str(exc)) from exc
    print(f"chart written to {path}", file=sys.stderr)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from synthweb.report import render_table, to_json

    first = (args.query.lstrip().split(None, 1) or [""])[0].upper()
    if not args.write and first in WRITES:
        raise CliError(f"`synthweb sql` is read-only: {first} changes the store; add --write to run it")
    store = open_store(settings_for(args), must_exist=not args.write)
    try:
        columns, rows = store.query(args.query, readonly=not args.write)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else repr(exc)
        if not args.write and "READONLY" in message:
            raise CliError(f"`synthweb sql` is read-only; add --write to change the store ({message})") from exc
        raise CliError(f"query failed: {message}") from exc
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    if args.format == "json":
        print(to_json(records))
    else:
        render_table(records, columns)
    return 0
