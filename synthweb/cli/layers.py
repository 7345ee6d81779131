"""Layer commands: `dedup` (near-duplicate clusters) and `layers` (each domain's layer per period)."""

from __future__ import annotations

import argparse
import json
import sys

from synthweb.cli.common import CliError, db_option, detector_option, load_detector, open_store, settings_for

LAYER_COLUMNS = ["period", "layer", "domains", "documents", "domain_share", "document_share", "near_duplicate_rate"]
TRANSITION_COLUMNS = ["from_period", "to_period", "from", "to", "domains", "examples"]


def register(sub) -> None:
    dedup = sub.add_parser("dedup", help="cluster near-duplicate documents (MinHash) per snapshot")
    dedup.add_argument("--snapshot", action="append", default=None, metavar="ID", help="this snapshot (repeatable; "
                       "default: every snapshot with new documents)")  # fmt: skip
    dedup.add_argument("--threshold", type=float, default=None, help="estimated Jaccard similarity of the words of "
                       "two documents in one cluster (default 0.6; docs/near-duplicates.md)")  # fmt: skip
    dedup.add_argument("--force", action="store_true", help="cluster again even where nothing changed")
    db_option(dedup)
    dedup.set_defaults(run=cmd_dedup)

    layers = sub.add_parser("layers", help="each domain's layer (synthetic, human, uncertain) per period")
    layers.add_argument("--by", choices=["snapshot", "year", "month"], default="snapshot", help="period")
    layers.add_argument("--cut", type=float, default=0.5, help="a domain is synthetic when its share's 95%% interval "
                        "lies above this, human when below (default 0.5)")  # fmt: skip
    layers.add_argument("--format", choices=["table", "json", "csv"], default="table")
    layers.add_argument("--transitions", action="store_true", help="for consecutive periods, the domains that "
                        "moved between layers")  # fmt: skip
    layers.add_argument("--domains", action="store_true", help="one row per (period, domain) instead of per layer")
    layers.add_argument("--chart", default=None, metavar="FILE", help="draw the split over time to FILE (.html)")
    layers.add_argument("--record", action="store_true", help="also write each domain's layer to the store's "
                        "domain_layers table (the Grafana panel reads it)")  # fmt: skip
    db_option(layers)
    detector_option(layers)
    layers.set_defaults(run=cmd_layers)


def cmd_dedup(args: argparse.Namespace) -> int:
    from synthweb.dedup import dedup

    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise CliError("--threshold must lie in (0, 1]")
    settings = settings_for(args)
    store = open_store(settings, must_exist=True)
    kwargs = {} if args.threshold is None else {"threshold": args.threshold}
    for run in dedup(store, args.snapshot, force=args.force, **kwargs):
        print(json.dumps(run.to_dict()))
    return 0


def run_dedup(store, snapshot: str) -> None:
    """The embedded run's last step: cluster the snapshot just crawled, one line on stderr."""
    from synthweb.dedup import dedup

    (run,) = dedup(store, [snapshot])
    rate = run.signed / run.seconds if run.seconds else 0.0
    print(
        f"near-duplicates: {run.clusters} clusters, {run.near_duplicate_documents} documents shared across domains "
        f"({run.signed} documents signed, {rate:.0f}/s)",
        file=sys.stderr,
    )


def cmd_layers(args: argparse.Namespace) -> int:
    from synthweb.cli.query import two_phase_rows
    from synthweb.layers import domain_layers, record, summarize, transitions
    from synthweb.report import render_table, share_report, to_csv, to_json

    if not 0 < args.cut < 1:
        raise CliError("--cut must lie in (0, 1)")
    settings = settings_for(args)
    store = open_store(settings, must_exist=True)
    dims = [args.by, "domain"]
    found = None if args.detector else two_phase_rows(settings, store, dims)
    if found is None:
        detector = load_detector(settings, models=False)
        try:
            found = (share_report(store, detector, dims), f"{detector.name} v{detector.version}")
        except ValueError as exc:
            raise CliError(str(exc)) from exc
    rows, label = found
    entries = domain_layers(rows, args.by, args.cut)
    if args.record:
        written = record(store, entries, args.by, args.cut, label)
        print(f"recorded the layers of {written} (period, domain) pairs in domain_layers", file=sys.stderr)
    if args.transitions:
        out, columns, title = transitions(entries), TRANSITION_COLUMNS, "domains that moved between layers"
    elif args.domains:
        columns = ["period", "domain", "layer", "documents", "share", "ci_low", "ci_high", "near_duplicate_documents"]
        out, title = entries, "layer of each domain"
    else:
        out, columns, title = summarize(entries), LAYER_COLUMNS, "the layers"
    if args.chart:
        from synthweb.chart import write_layers_chart

        try:
            path = write_layers_chart(args.chart, summarize(entries), transitions(entries), f"layers, {label}")
        except (OSError, ValueError) as exc:
            raise CliError(str(exc)) from exc
        print(f"chart written to {path}", file=sys.stderr)
    if args.format == "json":
        print(to_json(out))
    elif args.format == "csv":
        print(to_csv(out, columns), end="")
    else:
        render_table(out, columns, title=f"{title} (by {args.by}, cut {args.cut:g}), detector {label}")
    return 0
