"""Crawl commands: `run` (embedded: crawl, score, store, report) and `crawler` (join the Kafka fleet)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from synthweb.cli.common import (
    CliError,
    db_option,
    detector_option,
    load_detector,
    open_store,
    require_extra,
    settings_for,
)
from synthweb.config import load_settings


def register(sub) -> None:
    run = sub.add_parser("run", help="crawl sites, score their pages, store them")
    run.add_argument("seeds", nargs="*", metavar="SEED", help="a URL, a domain, or @FILE with one per line")
    run.add_argument("--max-pages-per-site", type=int, default=None, metavar="N")
    run.add_argument("--allow-private-networks", action="store_true", help="allow private/loopback addresses")
    run.add_argument("--snapshot", default=None, help="snapshot id (default: run-<UTC timestamp>)")
    run.add_argument("--user-agent", default=None, help="User-Agent to identify the crawler (env SYNTHWEB_USER_AGENT)")
    run.add_argument(
        "--sample-web", action="store_true", help="start the bundled local sample web and crawl it (no internet needed)"
    )
    run.add_argument(
        "--strong-rate",
        default=None,
        metavar="R",
        help="share of documents the strong detector (--detector) scores beside the fast one on every page: a "
        "number in (0, 1] or 'auto', which keeps pace with the crawl on this machine (env SYNTHWEB_STRONG_RATE, "
        "default auto; docs/estimation.md)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress display")
    db_option(run)
    detector_option(run)
    run.set_defaults(run=cmd_run)

    fleet = sub.add_parser("crawler", help="join the crawler fleet: crawl jobs from Kafka, send pages to pages.raw")
    fleet.add_argument("--max-jobs", type=int, default=0, metavar="N", help="stop after N jobs (default: never)")
    fleet.add_argument("--idle-exit", type=float, default=0, metavar="S", help="stop after S seconds without a job")
    fleet.add_argument("--allow-private-networks", action="store_true", help="allow private/loopback addresses")
    fleet.add_argument("--user-agent", default=None, help="User-Agent of the crawler (env SYNTHWEB_USER_AGENT)")
    fleet.add_argument(
        "-s", "--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting (repeatable)"
    )
    fleet.set_defaults(run=cmd_crawler)


def cmd_run(args: argparse.Namespace) -> int:
    from synthweb.cli.query import REPORT_COLUMNS, two_phase_rows
    from synthweb.sampling import parse_rate
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
    if args.strong_rate is not None:
        try:
            parse_rate(args.strong_rate)
        except ValueError as exc:
            raise CliError(f"--strong-rate: {exc}") from exc
    snapshot = args.snapshot or "run-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    settings = settings_for(
        args,
        SYNTHWEB_SNAPSHOT=snapshot,
        SYNTHWEB_MAX_PAGES_PER_SITE=args.max_pages_per_site,
        SYNTHWEB_ALLOW_PRIVATE_NETWORKS=True if (args.allow_private_networks or args.sample_web) else None,
        USER_AGENT=args.user_agent,
        SYNTHWEB_STRONG_RATE=args.strong_rate,
    )
    detector = load_detector(settings)
    try:
        detector.require_calibration()
    except ValueError as exc:  # worth knowing before a long crawl, not a reason to refuse it
        print(f"synthweb: warning: {exc}", file=sys.stderr)
    # Open (and migrate) before crawling, so a bad store fails in a second, not after the crawl.
    store = open_store(settings)

    from crawler.runner import run_crawl

    if args.sample_web:
        from synthweb.sampleweb import SampleWeb

        with SampleWeb() as web:
            print(f"sample web serving {len(web.seeds)} sites: {' '.join(web.seeds)}", file=sys.stderr)
            summary = run_crawl(web.seeds, settings, show_progress=not args.quiet)
    else:
        summary = run_crawl(seeds, settings, show_progress=not args.quiet)

    print(json.dumps({"snapshot": snapshot, **summary}), file=sys.stderr)
    if summary.get("finish_reason") == "store_failed":  # no report either: the store is not answering
        give_up = settings.getfloat("SYNTHWEB_STORE_GIVE_UP_SECONDS")
        print(f"synthweb: error: every page failed to be stored for {give_up:.0f}s (the store refusing writes?), "
              "so the crawl stopped; "
              f"{summary.get('pages_failed', 0)} fetched pages were not stored (those stored before stay)",
              file=sys.stderr)  # fmt: skip
        return 1
    from synthweb.cli.layers import run_dedup
    from synthweb.report import render_table, share_report

    if settings.getbool("SYNTHWEB_DEDUP") and summary.get("pages_stored"):
        run_dedup(store, snapshot)

    try:
        found = two_phase_rows(settings, store, ["domain"])
        rows, label = found or (share_report(store, detector, ["domain"]), detector.name)
        columns = ["domain", *(["strong_documents"] if found else []), *REPORT_COLUMNS]
        render_table([r for r in rows if r["pages"]], columns, title=f"synthetic share by domain, detector {label}")
    except (ValueError, CliError) as exc:  # e.g. an uncalibrated detector: pages stored, only the share missing
        print(f"synthweb: pages stored, no share reported: {exc}", file=sys.stderr)
    if summary.get("pages_failed"):
        print(f"synthweb: error: {summary['pages_failed']} pages could not be stored (see the log)", file=sys.stderr)
        return 1
    if summary.get("finish_reason") == "shutdown":  # Ctrl-C or SIGTERM: what was in flight is stored
        print("synthweb: interrupted; the pages above are stored", file=sys.stderr)
        return 130
    return 0


def cmd_crawler(args: argparse.Namespace) -> int:
    require_extra("stream", "synthweb crawler")
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
