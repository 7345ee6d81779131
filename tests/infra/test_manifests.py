"""The deployment files (infra/) parse and name only things that exist in the project.

No Docker engine, no cluster: everything is read as text/YAML/JSON and compared with the real code
(the argparse parser of synthweb/cli/, crawler/settings.py, schemas/clickhouse/*.sql, pyproject.toml).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from infra_checks import (
    COMPOSE,
    DASHBOARDS,
    INFRA,
    K8S,
    REPO,
    all_invocations,
    argv_errors,
    cli_subcommands,
    clickhouse_tables,
    commands_in_text,
    compose,
    console_scripts,
    doc_sql_statements,
    dockerfile_instruction,
    dockerfiles,
    env_names_in_deployment,
    env_vars_read,
    faust_app_errors,
    grafana_constants,
    grafana_queries,
    infra_yaml_files,
    k8s_object,
    k8s_objects,
    load_yaml_docs,
    pod_spec,
    scrapy_errors,
    settings_defaults,
    sql_tables,
)

TOPIC_SETTINGS = ("SYNTHWEB_TOPIC_JOBS", "SYNTHWEB_TOPIC_PAGES", "SYNTHWEB_TOPIC_DEAD")


# --- everything parses ---------------------------------------------------------------------------------------


def test_every_infra_yaml_file_parses():
    files = infra_yaml_files()
    assert COMPOSE in files and len(list(K8S.glob("*.yaml"))) >= 8
    for path in files:
        assert load_yaml_docs(path), f"{path} is empty"


def test_kubernetes_objects_are_well_formed():
    for obj in k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= obj.keys(), obj
        assert obj["metadata"].get("name"), obj


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert kustomization["namespace"] == k8s_object("Namespace")["metadata"]["name"]
    images = {image["name"] for image in kustomization["images"]}
    used = {c["image"].split(":")[0] for o in k8s_objects() if "spec" in o and o["kind"] != "Service"
            and o["kind"] != "HorizontalPodAutoscaler" for c in pod_spec(o)["containers"]}  # fmt: skip
    assert used <= images


def test_dashboards_and_schedule_are_json():
    dashboards = list(DASHBOARDS.glob("*.json"))
    assert dashboards
    for path in dashboards:
        assert json.loads(path.read_text())["panels"]
    schedule = json.loads((INFRA / "config" / "schedule.json").read_text())
    assert isinstance(schedule, list) and schedule
    for entry in schedule:
        assert set(entry) == {"name", "cron", "seeds"}
        assert len(entry["cron"].split()) == 5, entry["cron"]
        # /config is infra/config mounted into the worker (docker-compose.yml).
        assert entry["seeds"].startswith("/config/") and (INFRA / "config" / entry["seeds"][8:]).is_file()


# --- commands ------------------------------------------------------------------------------------------------


def test_every_synthweb_command_exists_in_the_cli_parser():
    """Fails on a branch without `synthweb crawler/worker/snapshot` (they come with the fleet and worker work)."""
    invocations = all_invocations()["synthweb"]
    assert len(invocations) >= 8
    problems = [f"{where}: {error}" for where, argv in invocations for error in argv_errors(argv)]
    assert not problems, "\n".join(problems)


def test_checker_catches_a_missing_subcommand_and_bad_arguments():
    assert "sql" in cli_subcommands()
    assert argv_errors(["sql", "SELECT 1"]) == []
    assert argv_errors(["report", "--by", "domain", "--format", "json"]) == []
    assert "no subcommand 'no-such-command'" in argv_errors(["no-such-command"])[0]
    assert "required" in argv_errors(["sql"])[0]
    assert "unrecognized arguments" in argv_errors(["sql", "SELECT 1", "--no-such-option"])[0]


def test_commands_are_found_in_shell_lines():
    line = "kubectl -n synthweb exec deploy/x -- synthweb sql 'SELECT 1' | head  # synthweb fake"
    assert commands_in_text(line)["synthweb"] == [["sql", "SELECT 1"]]
    assert commands_in_text("docker build -t synthweb .")["synthweb"] == []
    assert commands_in_text("faust -A stream.app worker -l info")["faust"] == [
        ["-A", "stream.app", "worker", "-l", "info"]
    ]


def test_faust_app_named_in_the_deployment_exists():
    """Fails on a branch without stream/app.py (it comes with the worker work)."""
    invocations = all_invocations()["faust"]
    assert invocations, "the deploy docs show `faust -A stream.app worker`"
    problems = [f"{where}: {e}" for where, argv in invocations for e in faust_app_errors(argv)]
    assert not problems, "\n".join(problems)


def test_faust_checker_catches_a_missing_app():
    assert faust_app_errors(["-A", "schemas.messages", "worker"]) == []
    assert faust_app_errors(["-A", "stream.no_such_app", "worker"])
    assert faust_app_errors(["worker"])


def test_scrapy_spiders_named_in_the_deployment_exist():
    """Fails on a branch without the `fleet` spider (it comes with the crawler fleet work)."""
    invocations = all_invocations()["scrapy"]
    assert invocations, "the deploy docs show `scrapy crawl fleet`"
    problems = [f"{where}: {e}" for where, argv in invocations for e in scrapy_errors(argv)]
    assert not problems, "\n".join(problems)


def test_scrapy_checker_catches_a_missing_spider():
    assert scrapy_errors(["crawl", "site"]) == []
    assert scrapy_errors(["crawl", "no-such-spider"])


def test_image_entry_point_is_the_console_script():
    scripts = console_scripts()
    for path in dockerfiles():
        entry = dockerfile_instruction(path, "ENTRYPOINT")
        assert len(entry) == 1 and entry[0] in scripts, f"{path.name}: {entry}"
        assert "pip install --no-deps -e ." in path.read_text(), f"{path.name} must install the project"
    assert {p.name for p in dockerfiles()} == {"Dockerfile", "Dockerfile.gpu"}


# --- GPU image -----------------------------------------------------------------------------------------------


def _requirements(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(INFRA / "requirements.py"), *args], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def test_gpu_image_swaps_onnxruntime_for_onnxruntime_gpu():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    cpu, gpu = _requirements(), _requirements("--gpu")
    extras = project["optional-dependencies"]
    assert cpu == project["dependencies"] + extras["stream"] + extras["charts"]  # images run distributed mode
    assert not [r for r in gpu if r.startswith("onnxruntime") and not r.startswith("onnxruntime-gpu")]
    assert project["optional-dependencies"]["gpu"][0] in gpu
    assert set(cpu) - set(gpu) == {r for r in cpu if r.startswith("onnxruntime")}
    text = (INFRA / "Dockerfile.gpu").read_text()
    assert "FROM nvidia/cuda:" in text and "requirements.py --gpu" in text
    assert "FROM python:3.12-slim" in (INFRA / "Dockerfile").read_text()


# --- topics, tables, settings --------------------------------------------------------------------------------


def test_topics_match_the_settings_defaults():
    defaults = settings_defaults()
    topics = {defaults[name] for name in TOPIC_SETTINGS}
    assert topics == {"crawl.jobs", "pages.raw", "pages.dead"}
    services = compose()["services"]
    for name, service in services.items():
        for setting in TOPIC_SETTINGS:
            if setting in service.get("environment", {}):
                assert service["environment"][setting] == defaults[setting], name
    init = "\n".join(services["init-topics"]["command"])
    created = dict(re.findall(r"^\s*create (\S+)(.*)$", init, re.MULTILINE))
    assert set(created) == topics
    settings_map = k8s_object("ConfigMap", "synthweb-settings")["data"]
    assert {settings_map[s] for s in TOPIC_SETTINGS} == topics


def test_init_topics_create_the_topic_configs_of_the_code():
    """Fails on a branch without stream/topics.py (it comes with the worker work)."""
    from stream.topics import topic_configs
    from synthweb.config import load_settings

    expected = topic_configs(load_settings())
    init = "\n".join(compose()["services"]["init-topics"]["command"])
    created = {
        name: dict(re.findall(r"--config (\S+)=(\S+)", rest))
        for name, rest in re.findall(r"^\s*create (\S+)(.*)$", init, re.MULTILINE)
    }
    assert created == expected
    broker_max = int(compose()["services"]["kafka"]["environment"]["KAFKA_MESSAGE_MAX_BYTES"])
    assert broker_max >= max(int(c.get("max.message.bytes", 0)) for c in expected.values())


def test_grafana_sql_names_only_existing_tables():
    tables = clickhouse_tables()
    assert {"pages", "skipped_pages", "page_stats"} <= tables
    queries = grafana_queries()
    assert len(queries) >= 5
    for where, sql in queries:
        named = sql_tables(sql)
        assert named, where
        assert named <= tables, f"{where} names {named - tables}"
    for where, sql in doc_sql_statements():
        assert sql_tables(sql) <= tables, f"{where}: {sql}"
    assert sql_tables("SELECT 1 FROM no_such_table") - tables == {"no_such_table"}


def test_grafana_takes_the_calibration_from_the_store():
    """No detector's error rates are pasted into the dashboard: they come from detector_calibrations."""
    constants = grafana_constants(DASHBOARDS / "synthweb-shares.json")
    assert not {"tpr", "fpr", "threshold_bin"} & set(constants)
    shares = [(where, sql) for where, sql in grafana_queries() if "AS share" in sql]
    assert len(shares) == 4
    for where, sql in shares:
        assert "FROM detector_calibrations FINAL" in sql and "detector = '${detector}'" in sql, where


@pytest.mark.slow
def test_grafana_queries_run_and_agree_with_synthweb_report(tmp_path):
    # A subprocess: chDB allows one on-disk store per process and the store tests hold theirs.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "dashboard_queries.py"), str(tmp_path / "store")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    queries = result["queries"]
    assert len([k for k in queries if k.startswith("infra/README.md")]) == 4
    assert len([k for k in queries if k.startswith("README.md")]) >= 2  # the root README's examples run too
    assert all(queries.values()), [k for k, v in queries.items() if not v]
    per_snapshot = {r["snapshot"]: r for r in next(v for k, v in queries.items() if "per snapshot" in k)}
    assert len(per_snapshot) == 2
    for row in result["report"]:
        grafana = per_snapshot[row["snapshot"]]
        for column in ("pages", "documents", "excluded"):
            assert grafana[column] == row[column]
        assert grafana["share"] == pytest.approx(row["share"], abs=1e-4)
        assert grafana["naive_share"] == pytest.approx(row["naive_share"], abs=1e-4)
    assert per_snapshot["weekly-1"]["share"] != per_snapshot["weekly-2"]["share"]
    layers = {r["snapshot"]: r for r in next(v for k, v in queries.items() if "Layers per snapshot" in k)}
    assert set(layers) == set(per_snapshot)
    for row in layers.values():  # two domains per snapshot, each in exactly one layer
        assert row["human"] + row["uncertain"] + row["synthetic"] == 2
    months = next(v for k, v in queries.items() if "by publication month" in k and "TLD" not in k)
    assert [r["time"] for r in months] == ["2025-01-01", "2025-02-01", "2025-03-01"]


def test_every_synthweb_env_var_set_by_the_deployment_is_read_by_the_code():
    read = env_vars_read()
    assert {"SYNTHWEB_DB", "SYNTHWEB_KAFKA_BOOTSTRAP", "SYNTHWEB_WORKER_WEB_PORT"} <= read
    used = env_names_in_deployment()
    assert "SYNTHWEB_DB" in used and "SYNTHWEB_TOPIC_PARTITIONS" in used
    unread = {name: where for name, where in used.items() if name not in read}
    assert not unread, f"set by the deployment but read by no code: {unread}"


# --- scaling and GPU -----------------------------------------------------------------------------------------


def test_gpu_worker_requests_a_gpu_and_probes_its_metrics_port():
    worker = k8s_object("Deployment", "synthweb-worker")
    (container,) = pod_spec(worker)["containers"]
    assert container["image"].startswith("synthweb-gpu")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    port = int(k8s_object("ConfigMap", "synthweb-settings")["data"]["SYNTHWEB_WORKER_WEB_PORT"])
    assert settings_defaults()["SYNTHWEB_WORKER_WEB_PORT"] == str(port)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # stream/app.py serves both: /readyz is 503 while the store refuses writes, /healthz while the loop answers.
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"]["path"] == path
        assert ports[container[probe]["httpGet"]["port"]] == port
    service = k8s_object("Service", "synthweb-worker-metrics")
    assert service["spec"]["selector"].items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    gpu = compose()["services"]["worker"]
    assert gpu["build"]["dockerfile"] == "infra/Dockerfile.gpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert compose()["services"]["worker-cpu"]["profiles"] == ["cpu"] and gpu["profiles"] == ["gpu"]


def test_hpa_scales_the_crawler_deployment_within_the_job_partitions():
    hpa = k8s_object("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    crawler = k8s_object("Deployment", target["name"])
    assert target["kind"] == "Deployment"
    assert pod_spec(crawler)["containers"][0]["args"][0] == "crawler"
    partitions = int(k8s_object("ConfigMap", "synthweb-settings")["data"]["SYNTHWEB_TOPIC_PARTITIONS"])
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions


def test_snapshot_cronjob_reads_a_seed_file_of_its_configmap():
    cronjob = k8s_object("CronJob", "synthweb-snapshot-weekly")
    spec = pod_spec(cronjob)
    args = spec["containers"][0]["args"]
    assert args[0] == "snapshot"
    (mount,) = spec["containers"][0]["volumeMounts"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    seeds = k8s_object("ConfigMap", volume["configMap"]["name"])["data"]
    assert args[-1].startswith(mount["mountPath"] + "/") and args[-1].rsplit("/", 1)[1] in seeds
    assert len(cronjob["spec"]["schedule"].split()) == 5


def test_layers_cronjob_dedups_before_it_records_the_layers():
    cronjob = k8s_object("CronJob", "synthweb-layers-hourly")
    spec = pod_spec(cronjob)
    # Init containers finish before the main one starts: the layers read the fresh clusters.
    assert [c["args"][0] for c in spec["initContainers"]] == ["dedup"]
    (main,) = spec["containers"]
    assert main["args"][:1] == ["layers"] and "--record" in main["args"]
    assert len(cronjob["spec"]["schedule"].split()) == 5


def test_compose_references_exist():
    services = compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert set(depends) <= set(services), name
        if "build" in service:
            assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source}"
    assert services["crawler"]["deploy"]["replicas"] and services["crawler"]["command"] == ["crawler"]
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    datasource = yaml.safe_load((INFRA / "grafana/provisioning/datasources/clickhouse.yaml").read_text())
    (ds,) = datasource["datasources"]
    panel_ds = {p["datasource"]["uid"] for p in json.loads((DASHBOARDS / "synthweb-shares.json").read_text())["panels"]}
    assert panel_ds == {ds["uid"]} and ds["type"] == "grafana-clickhouse-datasource"
