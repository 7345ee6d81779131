"""History commands: `ingest warc` (archives), `wayback` (captures of past years), `rescore` (stored text again)."""

from __future__ import annotations

import argparse
import json
import sys

from synthweb.cli.common import (
    CliError,
    db_option,
    detector_option,
    load_detector,
    open_store,
    require_extra,
    settings_for,
)


def register(sub) -> None:
    ingest = sub.add_parser("ingest", help="score archived pages (WARC/WET files)")
    kinds = ingest.add_subparsers(dest="ingest_kind", required=True)
    warc = kinds.add_parser("warc", help="ingest .warc(.gz)/.wet(.gz) files: local paths, http(s):// or s3:// URLs")
    warc.add_argument("sources", nargs="+", metavar="SOURCE")
    warc.add_argument("--snapshot", default=None, help="snapshot id (default: CC-MAIN-... or warc-NAME)")
    warc.add_argument("--publish", action="store_true", help="send raw pages to Kafka pages.raw for the Faust workers")
    warc.add_argument("--max-records", type=int, default=None, metavar="N", help="stop after N records (whole batches)")
    warc.add_argument("--batch-size", type=int, default=None, metavar="N", help="pages per batch and insert")
    warc.add_argument("--quiet", action="store_true", help="no progress display")
    db_option(warc)
    detector_option(warc)
    warc.set_defaults(run=cmd_ingest)

    wayback = sub.add_parser("wayback", help="score Wayback Machine captures of domains, one snapshot per year")
    wayback.add_argument("--domains", required=True, metavar="FILE", help="one domain per line")
    wayback.add_argument("--from", dest="year_from", type=int, required=True, metavar="YEAR")
    wayback.add_argument("--to", dest="year_to", type=int, required=True, metavar="YEAR")
    wayback.add_argument("--per-year", type=int, default=10, metavar="N", help="distinct URLs per domain and year")
    wayback.add_argument("--rate", type=float, default=None, metavar="R", help="requests per second (default 1)")
    wayback.add_argument("--cdx-url", default=None, help="CDX API (default https://web.archive.org/cdx/search/cdx)")
    wayback.add_argument("--quiet", action="store_true")
    db_option(wayback)
    detector_option(wayback)
    wayback.set_defaults(run=cmd_wayback)

    rescore = sub.add_parser("rescore", help="score stored text with another detector; new rows beside the old")
    rescore.add_argument("--where", default="", metavar="SQL", help="condition on `pages` rows to re-score")
    rescore.add_argument(
        "--sample",
        type=float,
        default=1.0,
        metavar="R",
        help="score only the documents a strong rate R in (0, 1] picks (two-phase scoring's sample; raises the "
        "inclusion probability of those already picked at a lower rate); default 1: every page",
    )
    rescore.add_argument("--quiet", action="store_true")
    db_option(rescore)
    detector_option(rescore)
    rescore.set_defaults(run=cmd_rescore)


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.max_records is not None and args.max_records < 1:
        raise CliError("--max-records must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise CliError("--batch-size must be at least 1")
    if args.publish:
        require_extra("stream", "synthweb ingest warc --publish")
    settings = settings_for(args, SYNTHWEB_BATCH_SIZE=args.batch_size)
    if not args.publish:
        load_detector(settings)
    open_store(settings).close()  # a bad store fails now, with one line

    from crawler.ingest import ingest_archives
    from synthweb.store import StoreError

    try:
        summary = ingest_archives(
            args.sources,
            settings,
            snapshot=args.snapshot,
            publish=args.publish,
            max_records=args.max_records,
            show_progress=not args.quiet,
        )
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(summary), file=sys.stderr)
    for source, reason in summary["failed_sources"].items():
        print(f"synthweb: error: {source}: {reason}", file=sys.stderr)
    return 1 if summary["failed_sources"] else 0


def cmd_wayback(args: argparse.Namespace) -> int:
    if args.year_from > args.year_to:
        raise CliError("--from must not be after --to")
    if args.per_year < 1:
        raise CliError("--per-year must be at least 1")
    if args.rate is not None and args.rate <= 0:
        raise CliError("--rate must be positive")
    try:
        with open(args.domains, encoding="utf-8") as f:
            domains = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    except OSError as exc:
        raise CliError(f"cannot read {args.domains}: {exc.strerror or exc}") from exc
    if not domains:
        raise CliError(f"{args.domains}: no domains")
    settings = settings_for(args, SYNTHWEB_WAYBACK_CDX_URL=args.cdx_url, SYNTHWEB_WAYBACK_RATE=args.rate)
    load_detector(settings)
    open_store(settings).close()

    from crawler.wayback import backfill

    summary = backfill(domains, range(args.year_from, args.year_to + 1), args.per_year, settings, not args.quiet)
    print(json.dumps(summary), file=sys.stderr)
    for failure in summary["failures"]:
        print(f"synthweb: could not fetch {failure['what']}: {failure['reason']}", file=sys.stderr)
    return 1 if summary["failures"] else 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from synthweb.rescore import RescoreError, rescore

    settings = settings_for(args)
    detector = load_detector(settings)
    store = open_store(settings)
    try:
        batch = settings.getint("SYNTHWEB_BATCH_SIZE", 64)
        summary = rescore(store, detector, args.where, batch, not args.quiet, sample=args.sample)
    except RescoreError as exc:
        raise CliError(str(exc)) from exc
    finally:
        store.close()
    print(json.dumps(summary), file=sys.stderr)
    return 0
