"""Print the project's runtime dependencies from pyproject.toml, one per line, for `pip install -r`.

A deployment runs distributed mode and draws charts, so the list is `project.dependencies` plus the
extras in DEPLOYED_EXTRAS.

`--gpu` swaps `onnxruntime` for the pinned `onnxruntime-gpu` of the `gpu` extra. Both distributions install
the same `onnxruntime` module, so installing both (as `pip install .[gpu]` would) leaves whichever came last;
the GPU image installs this list and then the project with `--no-deps`.

Usage: python infra/requirements.py [--gpu] [PYPROJECT]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

DEFAULT_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
DEPLOYED_EXTRAS = ("stream", "charts")


def requirement_name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_requirements(pyproject: Path, gpu: bool = False) -> list[str]:
    """`project.dependencies` and the deployed extras, with onnxruntime replaced by the `gpu` extra when `gpu`."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    requirements = list(project["dependencies"]) + [r for name in DEPLOYED_EXTRAS for r in extras.get(name, [])]
    if not gpu:
        return requirements
    gpu_extra = project["optional-dependencies"]["gpu"]
    if not any(requirement_name(r) == "onnxruntime-gpu" for r in gpu_extra):
        raise ValueError("the gpu extra of pyproject.toml does not name onnxruntime-gpu")
    kept = [r for r in requirements if requirement_name(r) != "onnxruntime"]
    if len(kept) == len(requirements):
        raise ValueError("pyproject.toml does not depend on onnxruntime; nothing to swap")
    return kept + gpu_extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="onnxruntime-gpu instead of onnxruntime")
    parser.add_argument("pyproject", nargs="?", type=Path, default=DEFAULT_PYPROJECT)
    args = parser.parse_args(argv)
    print("\n".join(runtime_requirements(args.pyproject, gpu=args.gpu)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
