"""The `synthweb` command line: run, report, sql, score, estimate, detectors, crawler, worker, snapshot,
ingest, wayback, rescore."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

from synthweb.cli_history import HISTORY_COMMANDS, add_history_commands
from synthweb.config import load_settings

REPORT_COLUMNS = ["pages", "documents", "excluded", "share", "ci_low", "ci_high", "naive_share", "fit_p"]
CONTROL_COLUMNS = [
    "domain",
    "lang",
    "control_documents",
    "control_rate",
    "ci_low",
    "ci_high",
    "lab_fpr",
    "drift",
    "used",
]


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="store DSN: chdb:///path (embedded, default ./synthweb-data) or http(s)://user:pass@host:port/db; "
        "env SYNTHWEB_DB",
    )


def _detector_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", default=None, help="detector name or directory (default: ensemble)")


def _method_option(parser: argparse.ArgumentParser) -> None:
    from synthweb.estimate import DEFAULT_METHOD, METHODS

    parser.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="share estimator (default: the one measured best for the detector on held-out mixtures, named in "
        f"its calibration.json, else {DEFAULT_METHOD}; see docs/estimation.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthweb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="crawl sites, score their pages, store them")
    run.add_argument("seeds", nargs="*", metavar="SEED", help="a URL, a domain, or @FILE with one per line")
    run.add_argument("--max-pages-per-site", type=int, default=None, metavar="N")
    run.add_argument("--allow-private-networks", action="store_true", help="allow private/loopback addresses")
    run.add_argument("--snapshot", default=None, help="snapshot id (default: run-<UTC timestamp>)")
    run.add_argument("--user-agent", default=None, help="User-Agent to identify the crawler (env SYNTHWEB_USER_AGENT)")
    run.add_argument(
        "--sample-web", action="store_true", help="start the bundled local sample web and crawl it (no internet needed)"
    )
    run.add_argument("--quiet", action="store_true", help="no progress display")
    _db_option(run)
    _detector_option(run)

    report = sub.add_parser("report", help="machine-written share per slice, with 95%% intervals")
    report.add_argument("--by", default="", metavar="DIMS", help="comma-separated: domain,tld,lang,year,month,snapshot")
    report.add_argument("--format", choices=["table", "json", "csv"], default="table")
    _method_option(report)
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
    _db_option(report)
    report.add_argument(
        "--detector", default=None, help="detector name or directory; several, comma-separated, to compare them"
    )

    sql = sub.add_parser("sql", help="run SQL on the store")
    sql.add_argument("query", metavar="QUERY")
    sql.add_argument("--format", choices=["table", "json"], default="table")
    _db_option(sql)

    score = sub.add_parser("score", help="add p_synthetic to each JSON line with a text")
    score.add_argument("file", metavar="FILE.jsonl|-")
    _detector_option(score)

    worker = sub.add_parser("worker", help="run a Faust stream worker: pages.raw -> stages -> store (distributed mode)")
    worker.add_argument("--loglevel", "-l", default="info", help="Faust log level (default: info)")
    _db_option(worker)

    snapshot = sub.add_parser("snapshot", help="publish one crawl job per site of SEEDFILE as a new snapshot")
    snapshot.add_argument("seedfile", metavar="SEEDFILE", help="one URL or domain per line (# comments)")
    snapshot.add_argument("--name", default=None, help="snapshot name; the id is NAME-<UTC time>-<4 hex>")

    estimate = sub.add_parser("estimate", help="machine-written share of the texts in a JSON-lines file")
    estimate.add_argument("file", metavar="FILE.jsonl|-")
    _method_option(estimate)
    _detector_option(estimate)

    fleet = sub.add_parser("crawler", help="join the crawler fleet: crawl jobs from Kafka, send pages to pages.raw")
    fleet.add_argument("--max-jobs", type=int, default=0, metavar="N", help="stop after N jobs (default: never)")
    fleet.add_argument("--idle-exit", type=float, default=0, metavar="S", help="stop after S seconds without a job")
    fleet.add_argument("--allow-private-networks", action="store_true", help="allow private/loopback addresses")
    fleet.add_argument("--user-agent", default=None, help="User-Agent of the crawler (env SYNTHWEB_USER_AGENT)")
    fleet.add_argument(
        "-s", "--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting (repeatable)"
    )
    from detectors.cli import add_parser as add_detectors_parser

    add_detectors_parser(sub)
    add_history_commands(sub, _db_option, _detector_option)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CliError as exc:
        print(f"synthweb: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthweb: interrupted", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace, **extra):
    overrides = {"SYNTHWEB_DB": getattr(args, "db", None), "SYNTHWEB_DETECTOR": getattr(args, "detector", None)}
    overrides.update(extra)
    return load_settings(overrides)


def _open_store(settings):
    from synthweb.store import Store, StoreError

    try:
        store = Store(settings.get("SYNTHWEB_DB"))
        store.migrate()
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # server-side errors while migrating
        raise CliError(f"cannot prepare store: {exc}") from exc
    return store


def _load_detector(settings):
    from detectors.runtime import DetectorError, load_detector

    try:
        return load_detector(settings.get("SYNTHWEB_DETECTOR"))
    except DetectorError as exc:
        raise CliError(str(exc)) from exc


def cmd_run(args: argparse.Namespace) -> int:
    from synthweb.seeds import SeedError, parse_seeds

    if args.max_pages_per_site is not None and args.max_pages_per_site < 1:
        raise CliError("--max-pages-per-site must be at least 1")
    if args.sample_web and args.seeds:
        raise CliError("give either --sample-web or seeds, not both")
    if not args.sample_web:
        try:
            seeds = parse_seeds(args.seeds)
        except SeedError as exc:
            raise CliError(str(exc)) from exc
    snapshot = args.snapshot or "run-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    settings = _settings(
        args,
        SYNTHWEB_SNAPSHOT=snapshot,
        SYNTHWEB_MAX_PAGES_PER_SITE=args.max_pages_per_site,
        SYNTHWEB_ALLOW_PRIVATE_NETWORKS=True if (args.allow_private_networks or args.sample_web) else None,
        USER_AGENT=args.user_agent,
    )
    detector = _load_detector(settings)
    try:
        detector.require_calibration()
    except ValueError as exc:  # worth knowing before a long crawl, not a reason to refuse it
        print(f"synthweb: warning: {exc}", file=sys.stderr)
    # Open (and migrate) before crawling, so a bad store fails in a second, not after the crawl.
    store = _open_store(settings)

    from crawler.runner import run_crawl

    if args.sample_web:
        from synthweb.sampleweb import SampleWeb

        with SampleWeb() as web:
            print(f"sample web serving {len(web.seeds)} sites: {' '.join(web.seeds)}", file=sys.stderr)
            summary = run_crawl(web.seeds, settings, show_progress=not args.quiet)
    else:
        summary = run_crawl(seeds, settings, show_progress=not args.quiet)

    print(json.dumps({"snapshot": snapshot, **summary}), file=sys.stderr)
    from synthweb.report import render_table, share_report

    try:
        rows = [r for r in share_report(store, detector, ["domain"]) if r["pages"]]
        render_table(rows, ["domain", *REPORT_COLUMNS], title=f"synthetic share by domain, detector {detector.name}")
    except ValueError as exc:  # e.g. an uncalibrated detector: the pages are stored, only the share is missing
        print(f"synthweb: pages stored, no share reported: {exc}", file=sys.stderr)
    if summary.get("pages_failed"):
        print(f"synthweb: error: {summary['pages_failed']} pages could not be stored (see the log)", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from synthweb.report import control_report, parse_dimensions, render_table, share_report, to_csv, to_json

    try:
        dims = parse_dimensions(args.by)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    settings = _settings(args)
    store = _open_store(settings)
    if args.control:
        detector = _load_detector(settings)
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
    names = [n.strip() for n in (args.detector or "").split(",") if n.strip()] or [None]
    rows = []
    detectors = [_load_detector(_settings(args, SYNTHWEB_DETECTOR=name)) for name in names]
    label = ", ".join(f"{d.name} v{d.version}" for d in detectors)
    if args.chart:
        return _write_chart(args, store, detectors, dims, label)
    for detector in detectors:  # several detectors (or versions): rows side by side, to compare them
        tag = {"detector": detector.name, "version": detector.version} if len(names) > 1 else {}
        try:
            found = share_report(store, detector, dims, method=args.method, fpr_from=args.fpr_from)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        rows += [{**tag, **row} for row in found]
    columns = (["detector", "version"] if len(names) > 1 else []) + [*dims, *REPORT_COLUMNS]
    columns += ["fpr_source"] if args.fpr_from == "control" else []
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
        chart_format(args.chart)
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

    store = _open_store(_settings(args))
    try:
        columns, rows = store.query(args.query)
    except Exception as exc:
        raise CliError(f"query failed: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    if args.format == "json":
        print(to_json(records))
    else:
        render_table(records, columns)
    return 0


def _read_jsonl(path: str) -> Iterator[tuple[int, dict]]:
    stream: TextIO
    try:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CliError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise CliError(f"{path}:{number}: expected a JSON object with a string field 'text'")
            yield number, record


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def cmd_score(args: argparse.Namespace) -> int:
    detector = _load_detector(_settings(args))
    for chunk in _chunks(_read_jsonl(args.file), 256):
        scores = detector.score([record["text"] for _, record in chunk])
        for (_, record), score in zip(chunk, scores, strict=True):
            record["p_synthetic"] = round(float(score), 6)
            print(json.dumps(record, ensure_ascii=False))
        sys.stdout.flush()
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from synthweb.estimate import Calibration, estimate_scores

    detector = _load_detector(_settings(args))
    try:  # before scoring: an uncalibrated detector gives no share
        calibration = Calibration.from_dict(detector.require_calibration())
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    scores, excluded = [], 0
    for chunk in _chunks(_read_jsonl(args.file), 256):
        texts = [record["text"] for _, record in chunk]
        kept = [t for t in texts if len(t.split()) >= detector.min_words]
        excluded += len(texts) - len(kept)
        if kept:
            scores.extend(detector.score(kept))
    estimate = estimate_scores(scores, calibration, method=args.method)
    print(json.dumps({**estimate.to_dict(), "excluded": excluded, "min_words": detector.min_words}))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from synthweb.store import StoreError, normalize_dsn

    # stream.app reads the settings when imported: the store DSN goes in through the environment.
    if args.db:
        os.environ["SYNTHWEB_DB"] = args.db
    try:
        normalize_dsn(_settings(args).get("SYNTHWEB_DB"))
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    from stream.snapshots import ScheduleError
    from stream.topics import KafkaUnavailable, ensure_topics

    try:
        from stream.app import app

        ensure_topics(_settings(args))  # a broker that is down is one line here, not a traceback later
    except (ScheduleError, KafkaUnavailable) as exc:
        raise CliError(str(exc)) from exc
    sys.argv = ["synthweb worker", "worker", "--loglevel", args.loglevel]
    app.main()  # runs until stopped; exits the process
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from stream.snapshots import publish_snapshot
    from stream.topics import KafkaUnavailable
    from synthweb.seeds import SeedError

    try:
        snapshot, jobs = publish_snapshot([f"@{args.seedfile}"], name=args.name, settings=_settings(args))
    except (SeedError, KafkaUnavailable, ValueError) as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps({"snapshot": snapshot, "jobs": jobs}))
    return 0


def cmd_crawler(args: argparse.Namespace) -> int:
    if args.max_jobs < 0 or args.idle_exit < 0:
        raise CliError("--max-jobs and --idle-exit must not be negative")
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"-s wants NAME=VALUE, got {item!r}")
        overrides[name] = value
    overrides["SYNTHWEB_ALLOW_PRIVATE_NETWORKS"] = True if args.allow_private_networks else None
    overrides["USER_AGENT"] = args.user_agent
    settings = load_settings(overrides)

    from crawler.runner import run_fleet

    summary = run_fleet(settings, max_jobs=args.max_jobs, idle_exit=args.idle_exit)
    print(json.dumps(summary))
    if summary["failure"]:
        print(f"synthweb: error: {summary['failure']}", file=sys.stderr)
        return 1
    return 0


def cmd_detectors(args: argparse.Namespace) -> int:
    from detectors.cli import run

    return run(args)


COMMANDS = {
    "run": cmd_run,
    "report": cmd_report,
    "sql": cmd_sql,
    "score": cmd_score,
    "estimate": cmd_estimate,
    "crawler": cmd_crawler,
    "worker": cmd_worker,
    "snapshot": cmd_snapshot,
    "detectors": cmd_detectors,
}
COMMANDS.update(HISTORY_COMMANDS)


if __name__ == "__main__":
    # Run the imported module's main, so `python -m synthweb.cli` and the commands registered
    # from other modules share one CliError class (not __main__'s copy).
    from synthweb.cli import main as module_main

    sys.exit(module_main())
