"""The `synthweb` command line: run, report, sql, score, estimate, detectors, crawler, worker, snapshot,
ingest, wayback, rescore, dedup, layers.

One module per command group (`register(subparsers)` adds its commands, each setting `run`); the
shared options and the user-error type are in `synthweb.cli.common`. Libraries raise their own
errors; the commands turn them into `CliError`, printed here as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from synthweb.cli import crawl, detectors, files, history, layers, query, stream
from synthweb.cli.common import CliError
from synthweb.config import SettingsError

__all__ = ["CliError", "build_parser", "main"]

GROUPS = (crawl, query, layers, files, stream, detectors, history)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthweb", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CliError, SettingsError) as exc:
        print(f"synthweb: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthweb: interrupted", file=sys.stderr)
        return 130
