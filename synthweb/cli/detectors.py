"""`synthweb detectors ...`: list, evaluate, build, export and calibrate detectors.

Each subcommand is one function decorated with `@subcommand` that adds its parser and sets `run`.
The work is done by the detectors library; detector errors become the CLI's one-line errors here.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable

from synthweb.cli.common import CliError, load_detector, settings_for

SUBCOMMANDS: list[Callable] = []


def subcommand(add: Callable) -> Callable:
    """Register a function `add(subparsers)` that adds a `detectors` subcommand."""
    SUBCOMMANDS.append(add)
    return add


def register(sub) -> None:
    """Add the `detectors` command group to the top-level subparsers."""
    group = sub.add_parser("detectors", help="list, evaluate, build, export and calibrate detectors")
    inner = group.add_subparsers(dest="detectors_command", required=True, metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(inner)


def one_line_errors(func: Callable) -> Callable:
    """Run a command, turning the detector library's errors into the CLI's one-line error."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from detectors.runtime import DetectorError

        try:
            return func(args)
        except DetectorError as exc:
            raise CliError(str(exc)) from exc

    return run


@subcommand
def _list(sub) -> None:
    p = sub.add_parser("list", help="detectors shipped and on $SYNTHWEB_DETECTORS_PATH")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from detectors.runtime import available

    rows = available()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        from synthweb.report import render_table

        columns = ["name", "version", "kind", "languages", "min_words", "calibrated", "cpu_ms_per_doc",
                   "gpu_ms_per_doc", "path"]  # fmt: skip
        render_table(rows, columns, title="detectors")
    return 0


@subcommand
def _eval(sub) -> None:
    from crawler import settings

    p = sub.add_parser("eval", help="AUROC and TPR at 1%%/5%% FPR on labelled texts, by domain/generator/length")
    p.add_argument(
        "file", metavar="FILE.jsonl|-", help="lines with text, label human|machine, optional domain, generator"
    )
    p.add_argument(
        "--detector", default=None,
        help=f"detector name or directory (env SYNTHWEB_DETECTOR, default: {settings.SYNTHWEB_DETECTOR})",
    )  # fmt: skip
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=one_line_errors(cmd_eval))


def cmd_eval(args: argparse.Namespace) -> int:
    from detectors.evaluation import evaluate, read_labelled

    records = read_labelled(args.file)  # first: a bad file fails before a language model loads for seconds
    detector = load_detector(settings_for(args))
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
    p.set_defaults(run=one_line_errors(cmd_build))


def cmd_build(args: argparse.Namespace) -> int:
    from detectors.lm_build import MODELS, VARIANTS, build

    variants = VARIANTS if args.variant == "all" else (args.variant,)
    for name in args.names or list(MODELS):
        for variant, path in build(name, variants, force=args.force).items():
            print(f"{name}\t{variant}\t{path}")
    return 0


@subcommand
def _export(sub) -> None:
    exp = sub.add_parser("export", help="turn a local Hugging Face causal LM checkpoint into a detector")
    exp.add_argument("checkpoint", metavar="CHECKPOINT_DIR")
    exp.add_argument("--out", required=True, metavar="DIR", help="new detector directory")
    exp.add_argument("--name", default=None, help="detector name (default: the --out directory's name)")
    exp.add_argument("--performer", default=None, metavar="CHECKPOINT_DIR2", help="second LM: Binoculars")
    exp.add_argument("--max-tokens", type=int, default=256, metavar="N", help="tokens scored per text")
    exp.add_argument("--languages", default="en", help="comma-separated languages the LMs know (default: en)")
    exp.add_argument("--min-words", type=int, default=50, metavar="N", help="shorter texts are excluded")
    exp.set_defaults(run=one_line_errors(cmd_export))


def cmd_export(args: argparse.Namespace) -> int:
    from detectors.export import export_checkpoint

    out = export_checkpoint(
        args.checkpoint, args.out, name=args.name, performer=args.performer,
        max_tokens=args.max_tokens, languages=tuple(args.languages.split(",")), min_words=args.min_words,
    )  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    method, name, cut = manifest["method"], manifest["name"], manifest["max_tokens"]
    print(f"wrote {method} detector {name!r} to {out} (texts cut to {cut} tokens)")
    print(f"calibrate it on labelled texts: synthweb detectors calibrate {out} FILE.jsonl")
    return 0


@subcommand
def _calibrate(sub) -> None:
    cal = sub.add_parser("calibrate", help="fit a detector's calibration on labelled JSON lines")
    cal.add_argument("directory", metavar="DIR")
    cal.add_argument("file", metavar="FILE.jsonl", help="lines with text and label human|machine")
    cal.set_defaults(run=one_line_errors(cmd_calibrate))


def cmd_calibrate(args: argparse.Namespace) -> int:
    from detectors.calibrate import calibrate_detector
    from detectors.runtime import resolve

    manifest = resolve(args.directory) / "manifest.json"
    before = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    cal = calibrate_detector(args.directory, args.file)
    print(
        f"calibrated on {cal['n_human']} human and {cal['n_machine']} machine texts: AUROC {cal['auroc']}, "
        f"threshold {cal['threshold']} (TPR {cal['tpr']}, FPR {cal['fpr']})"
    )
    after = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    if after != before:
        print(
            f"new score map, so version {before} -> {after}: pages scored as version {before} are reported "
            f"apart; `synthweb rescore --detector {args.directory}` scores them again"
        )
    return 0
