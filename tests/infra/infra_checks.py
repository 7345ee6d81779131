"""Helpers for tests/infra: read the deployment files and the project, and say what does not match.

Pure parsing: no Docker engine, no cluster. Each `*_errors` function returns a list of problems (empty = fine),
so tests can assert on it and also feed it wrong input to prove it catches mistakes.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
COMPOSE = INFRA / "docker-compose.yml"
DASHBOARDS = INFRA / "grafana" / "provisioning" / "dashboards"
DOCS = [INFRA / "README.md", REPO / "README.md"]
CODE_PACKAGES = ["crawler", "synthweb", "stream", "detectors"]
# Words after which "synthweb" is an argument (a namespace, an image tag, a user), not the command.
_NOT_A_COMMAND_AFTER = re.compile(r"^-(?!-$)")  # a flag takes it as its value; `--` does not
_SHELL_STOP = {"|", "||", "&&", ";", ">", ">>", "2>&1", "<", "&"}


# --- project facts -------------------------------------------------------------------------------------------


def cli_parser() -> argparse.ArgumentParser:
    from synthweb.cli import build_parser

    return build_parser()


def cli_subcommands(parser: argparse.ArgumentParser | None = None) -> set[str]:
    """The subcommand names of the real `synthweb` argparse parser."""
    parser = parser or cli_parser()
    names: set[str] = set()
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            names.update(action.choices)
    return names


def argv_errors(argv: list[str], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """Why `synthweb ARGV` would be refused by the real parser (subcommand, options, arguments); [] if accepted."""
    parser = parser or cli_parser()
    if not argv:
        return ["no subcommand"]
    if argv[0] in ("-h", "--help"):
        return []
    if argv[0] not in cli_subcommands(parser):
        return [f"synthweb has no subcommand {argv[0]!r} (has: {', '.join(sorted(cli_subcommands(parser)))})"]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code:
            return [stderr.getvalue().strip().splitlines()[-1]]
    return []


def console_scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def spider_names() -> set[str]:
    """`name = "..."` of every class in crawler/spiders/*.py."""
    names = set()
    for path in (REPO / "crawler" / "spiders").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if (
                        isinstance(stmt, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "name" for t in stmt.targets)
                        and isinstance(stmt.value, ast.Constant)
                    ):
                        names.add(stmt.value.value)
    return names


def module_file(dotted: str) -> Path | None:
    """The file of an importable module path like `stream.app` in the repo, or None."""
    base = REPO.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _code_files() -> Iterator[Path]:
    for package in CODE_PACKAGES:
        yield from (REPO / package).rglob("*.py")


def env_vars_read() -> set[str]:
    """Names read from the environment by project code: os.environ.get/[]/setdefault and os.getenv literals,
    and the settings synthweb.config overrides from the environment."""
    names = set()
    for path in _code_files():
        for node in ast.walk(ast.parse(path.read_text())):
            key = None
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                if isinstance(func, ast.Attribute) and (
                    (func.attr in ("get", "setdefault", "pop") and _is_os_environ(func.value))
                    or (func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os")
                ):
                    key = node.args[0].value
            elif (
                isinstance(node, ast.Subscript) and _is_os_environ(node.value) and isinstance(node.slice, ast.Constant)
            ):
                key = node.slice.value
            if isinstance(key, str):
                names.add(key)
    # synthweb.config applies SYNTHWEB_* variables to the settings of those names, and its aliases
    from synthweb.config import ALIASES

    names |= {name for name in settings_defaults() if name.startswith("SYNTHWEB_")} | set(ALIASES)
    return names


def _is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def settings_defaults() -> dict[str, object]:
    """Module-level settings of crawler/settings.py with their defaults; numbers as the environment spells them."""
    values: dict[str, object] = {}
    tree = ast.parse((REPO / "crawler" / "settings.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _default_of(node.value)
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            values[node.targets[0].id] = str(value) if is_number else value
    return values


def _default_of(node: ast.AST) -> object:
    if isinstance(node, ast.Call):
        # int(os.environ.get("X", "6")) or os.environ.get("X", "d"): the default literal.
        if isinstance(node.func, ast.Name) and node.args:
            return _default_of(node.args[0])
        if len(node.args) == 2 and isinstance(node.args[1], ast.Constant):
            return node.args[1].value
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def clickhouse_tables() -> set[str]:
    """Tables and views created by schemas/clickhouse/*.sql."""
    names = set()
    for path in (REPO / "schemas" / "clickhouse").glob("*.sql"):
        names.update(
            re.findall(
                r"CREATE\s+(?:TABLE|MATERIALIZED\s+VIEW|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)`?",
                path.read_text(),
                re.IGNORECASE,
            )
        )
    return names


def sql_tables(sql: str) -> set[str]:
    """Table names after FROM/JOIN (subqueries in parentheses skipped)."""
    return set(re.findall(r"\b(?:FROM|JOIN)\s+(?!\()`?([A-Za-z_][\w]*)`?", sql, re.IGNORECASE))


# --- deployment files ----------------------------------------------------------------------------------------


def infra_yaml_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yml", ".yaml") and "kafka" not in p.parts)


def load_yaml_docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_objects() -> list[dict]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            objects.extend(load_yaml_docs(path))
    return objects


def k8s_object(kind: str, name: str | None = None) -> dict:
    found = [o for o in k8s_objects() if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict) -> dict:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def dockerfiles() -> list[Path]:
    return sorted(INFRA.glob("Dockerfile*"))


def dockerfile_instruction(path: Path, name: str) -> list[str]:
    """The JSON (exec-form) arguments of the last NAME instruction of a Dockerfile, e.g. ENTRYPOINT."""
    found = None
    for line in path.read_text().splitlines():
        if line.startswith(name + " "):
            found = json.loads(line[len(name) + 1 :])
    if found is None:
        raise ValueError(f"{path.name} has no exec-form {name}")
    return found


def synthweb_image_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every `synthweb` invocation in the compose file, the k8s manifests and the Dockerfiles."""
    found: list[tuple[str, list[str]]] = []
    for path in dockerfiles():
        if dockerfile_instruction(path, "ENTRYPOINT") == ["synthweb"]:
            found.append((path.name, dockerfile_instruction(path, "CMD")))
    for name, service in compose()["services"].items():
        if str(service.get("image", "")).startswith("synthweb") and "command" in service:
            found.append((f"compose service {name}", list(service["command"])))
    for obj in k8s_objects():
        if obj["kind"] not in ("Deployment", "CronJob", "Job", "StatefulSet"):
            continue
        spec = pod_spec(obj)
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["image"].split(":")[0] in ("synthweb", "synthweb-gpu"):
                argv = list(container.get("command", [])) + list(container.get("args", []))
                if container.get("command"):
                    assert argv[0] == "synthweb", f"{obj['metadata']['name']} overrides the entry point"
                    argv = argv[1:]
                found.append((f"k8s {obj['kind']} {obj['metadata']['name']}", argv))
    return found


def doc_code_lines() -> list[tuple[str, str]]:
    """(file name, line) of the shell code blocks (```bash, ```sh) of the deploy docs, continuation lines joined."""
    lines = []
    for path in DOCS:
        if not path.exists():
            continue
        fence: str | None = None  # the language of the open code block
        pending = ""
        for raw in path.read_text().splitlines():
            if raw.strip().startswith("```"):
                fence = raw.strip()[3:] if fence is None else None
                continue
            if fence in ("bash", "sh", "shell"):
                pending += raw.rstrip("\\").rstrip() + " " if raw.endswith("\\") else raw
                if not raw.endswith("\\"):
                    lines.append((path.name, pending))
                    pending = ""
    return lines


def commands_in_text(line: str) -> dict[str, list[list[str]]]:
    """The argv after `synthweb`, `faust`, `scrapy` in one shell line (after a `#` comment nothing counts)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        tokens = line.split("#", 1)[0].split()
    found: dict[str, list[list[str]]] = {"synthweb": [], "faust": [], "scrapy": []}
    for i, token in enumerate(tokens):
        program = token.rsplit("/", 1)[-1]
        if program not in found or (i and _NOT_A_COMMAND_AFTER.match(tokens[i - 1])):
            continue
        argv = []
        for arg in tokens[i + 1 :]:
            if arg in _SHELL_STOP:
                break
            argv.append(arg)
        found[program].append(argv)
    return found


def all_invocations() -> dict[str, list[tuple[str, list[str]]]]:
    """Every synthweb/faust/scrapy invocation in the deployment files and deploy docs, with where it is."""
    found: dict[str, list[tuple[str, list[str]]]] = {
        "synthweb": list(synthweb_image_commands()),
        "faust": [],
        "scrapy": [],
    }
    texts = [(p.name, line) for p in [*infra_yaml_files(), *dockerfiles()] for line in p.read_text().splitlines()]
    texts += doc_code_lines()
    for where, line in texts:
        for program, argvs in commands_in_text(line).items():
            if program == "synthweb" and not where.endswith(".md"):
                continue  # image commands come from the parsed files above
            found[program].extend((where, argv) for argv in argvs)
    return found


def faust_app_errors(argv: list[str]) -> list[str]:
    """`faust -A MODULE worker`: MODULE must be a file of the repo."""
    if "-A" not in argv or argv.index("-A") + 1 >= len(argv):
        return [f"faust {shlex.join(argv)}: no -A APP"]
    app = argv[argv.index("-A") + 1].split(":")[0]
    return [] if module_file(app) else [f"faust app module {app!r} has no file in the repo"]


def scrapy_errors(argv: list[str], spiders: set[str] | None = None) -> list[str]:
    spiders = spider_names() if spiders is None else spiders
    if len(argv) >= 2 and argv[0] == "crawl" and argv[1] not in spiders:
        return [f"scrapy crawl {argv[1]}: no spider of that name in crawler/spiders ({', '.join(sorted(spiders))})"]
    return []


def grafana_queries() -> list[tuple[str, str]]:
    """(where, SQL) of every panel target and query variable of the provisioned dashboards."""
    found = []
    for path in DASHBOARDS.glob("*.json"):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name} panel {panel['title']!r}", target["rawSql"]))
        for var in dashboard["templating"]["list"]:
            if var["type"] == "query":
                found.append((f"{path.name} variable {var['name']}", var["query"]))
    return found


def doc_sql_statements() -> list[tuple[str, str]]:
    """(file name, statement) of the ```sql blocks of the deploy docs."""
    found = []
    for path in DOCS:
        if path.exists():
            for block in re.findall(r"```sql\n(.*?)```", path.read_text(), re.DOTALL):
                script = re.sub(r"--[^\n]*", "", block)
                found.extend((str(path.relative_to(REPO)), s.strip()) for s in script.split(";") if s.strip())
    return found


def grafana_constants(path: Path) -> dict[str, str]:
    dashboard = json.loads(path.read_text())
    return {v["name"]: v["query"] for v in dashboard["templating"]["list"] if v["type"] == "constant"}


def env_names_in_deployment() -> dict[str, list[str]]:
    """SYNTHWEB_* environment variables the deployment sets, with where: compose `environment`, k8s ConfigMap,
    Secret and container `env`, Dockerfile ENV, .env.example, and `NAME=value` in the deploy docs' code."""
    names: dict[str, list[str]] = {}

    def add(name: str, where: str) -> None:
        if name.startswith("SYNTHWEB_"):
            names.setdefault(name, []).append(where)

    for service_name, service in compose()["services"].items():
        for name in service.get("environment", {}) or {}:
            add(name, f"compose {service_name}")
    for obj in k8s_objects():
        for key in ("data", "stringData"):
            for name in obj.get(key, {}) or {}:
                add(name, f"k8s {obj['kind']} {obj['metadata']['name']}")
        if obj["kind"] in ("Deployment", "CronJob"):
            for container in pod_spec(obj)["containers"]:
                for entry in container.get("env", []):
                    add(entry["name"], f"k8s {obj['metadata']['name']}")
    for path in dockerfiles():
        for name in re.findall(r"^\s*(?:ENV\s+)?(SYNTHWEB_[A-Z0-9_]+)=", path.read_text(), re.MULTILINE):
            add(name, path.name)
    for line in (INFRA / ".env.example").read_text().splitlines():
        add(line.split("=", 1)[0].strip(), ".env.example")
    for where, line in doc_code_lines():
        for name in re.findall(r"\b(SYNTHWEB_[A-Z0-9_]+)=", line):
            add(name, where)
    return names
