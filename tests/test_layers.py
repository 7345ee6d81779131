"""Imports run one way (docs/architecture.md): a module imports only modules of its own layer or below.

Every `import` and `from ... import` of our packages counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("detectors", "schemas", "synthweb", "crawler", "stream")
# (module prefix, layer); the longest matching prefix wins. Keep in step with docs/architecture.md.
LAYERS = {
    "detectors": 0,  # the detector library: text in, scores out
    "synthweb.pipeline": 1,  # the core contract: Page, Stage, Pipeline, settings, messages, calibration maths
    "synthweb.config": 1,
    "synthweb.driver": 1,
    "crawler.settings": 1,
    "schemas": 1,
    "synthweb.quantify": 1,
    "synthweb.estimate": 1,
    "synthweb.twophase": 1,
    "synthweb.sampling": 1,
    "synthweb.neardup": 1,
    "synthweb.layers": 1,
    "synthweb.seeds": 1,
    "crawler.extract": 2,  # stages and the store (and what reads the store)
    "crawler.language": 2,
    "synthweb.score": 2,
    "synthweb.store": 2,
    "synthweb.report": 2,
    "synthweb.chart": 2,
    "synthweb.dedup": 2,
    "synthweb.sampleweb": 2,
    "synthweb.make_sample_texts": 2,
    "crawler": 3,  # sources (Scrapy crawl, WARC, Wayback, rescore) and the stream
    "synthweb.rescore": 3,
    "stream": 3,
    "synthweb.cli": 4,  # the command line
    "synthweb": 1,  # synthweb/__init__.py: the version only (every synthweb.* module is listed above)
}
# Sources and the stream sit side by side: neither package imports the other's layer-3 modules.
SIBLINGS = {"crawler": "stream", "stream": "crawler"}


def layer_of(module: str) -> tuple[str, int]:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    if prefix is None:
        raise KeyError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")
    return prefix, LAYERS[prefix]


def our_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & set(modules)
            names |= submodules or {base}  # `from pkg import module` imports the module
    return {n for n in names if n.split(".")[0] in PACKAGES and n in modules}


def violations(modules: dict[str, Path]) -> list[str]:
    found = []
    for module, path in sorted(modules.items()):
        _, mine = layer_of(module)
        for target in sorted(imports_of(path, module, modules)):
            prefix, theirs = layer_of(target)
            top, other = module.split(".")[0], target.split(".")[0]
            if theirs > mine:
                found.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
            elif mine == theirs == 3 and SIBLINGS.get(top) == other:
                found.append(f"{module} imports {target}: sources and the stream do not import each other")
    return found


def test_imports_run_from_the_cli_down_to_the_detector_library():
    assert violations(our_modules()) == []


def test_the_detector_library_imports_nothing_of_ours():
    modules = our_modules()
    for module, path in modules.items():
        if module.split(".")[0] == "detectors":
            assert {t.split(".")[0] for t in imports_of(path, module, modules)} <= {"detectors"}, module


def test_the_check_catches_upward_and_sideways_imports(tmp_path):
    """The checker itself: a detectors module importing the CLI inside a function, and stream importing a spider."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from synthweb.cli import main\n")
    side = tmp_path / "side.py"
    side.write_text("from crawler.spiders import site\n")
    modules = {**our_modules(), "detectors.bad": bad, "stream.side": side}
    assert violations(modules) == [
        "detectors.bad (layer 0) imports synthweb.cli (layer 4)",
        "stream.side imports crawler.spiders.site: sources and the stream do not import each other",
    ]


@pytest.mark.parametrize("module", ["synthweb.cli.common", "crawler.spiders.site", "stream.app", "schemas.messages"])
def test_every_module_has_a_layer(module):
    assert module in our_modules()
    layer_of(module)


def test_no_synthweb_module_falls_back_to_the_package_entry():
    unlisted = [m for m in our_modules() if m != "synthweb" and layer_of(m)[0] == "synthweb"]
    assert unlisted == [], "give new synthweb modules their layer in LAYERS and docs/architecture.md"
