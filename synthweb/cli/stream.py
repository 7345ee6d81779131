"""Distributed-mode commands: `worker` (a Faust stream worker) and `snapshot` (publish crawl jobs)."""

from __future__ import annotations

import argparse
import json
import sys

from synthweb.cli.common import CliError, db_option, require_extra, settings_for


def register(sub) -> None:
    worker = sub.add_parser("worker", help="run a Faust stream worker: pages.raw -> stages -> store (distributed mode)")
    worker.add_argument("--loglevel", "-l", default="info", help="Faust log level (default: info)")
    db_option(worker)
    worker.set_defaults(run=cmd_worker)

    snapshot = sub.add_parser("snapshot", help="publish one crawl job per site of SEEDFILE as a new snapshot")
    snapshot.add_argument("seedfile", metavar="SEEDFILE", help="one URL or domain per line (# comments)")
    snapshot.add_argument("--name", default=None, help="snapshot name; the id is NAME-<UTC time>-<4 hex>")
    snapshot.set_defaults(run=cmd_snapshot)


def cmd_worker(args: argparse.Namespace) -> int:
    require_extra("stream", "synthweb worker")
    from synthweb.store import StoreError, normalize_dsn

    settings = settings_for(args)
    try:
        normalize_dsn(settings.get("SYNTHWEB_DB"))
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    from stream.snapshots import ScheduleError
    from stream.topics import KafkaUnavailable, ensure_topics

    try:
        from stream.app import create_app

        app = create_app(settings)
        ensure_topics(settings)  # a broker that is down is one line here, not a traceback later
    except (ScheduleError, KafkaUnavailable) as exc:
        raise CliError(str(exc)) from exc
    sys.argv = ["synthweb worker", "worker", "--loglevel", args.loglevel]
    app.main()  # runs until stopped; exits the process
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    require_extra("stream", "synthweb snapshot")
    from stream.snapshots import publish_snapshot
    from stream.topics import KafkaUnavailable
    from synthweb.seeds import SeedError

    try:
        snapshot, jobs = publish_snapshot([f"@{args.seedfile}"], name=args.name, settings=settings_for(args))
    except (SeedError, KafkaUnavailable, ValueError) as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps({"snapshot": snapshot, "jobs": jobs}))
    return 0
