"""Snapshots: crawl jobs published to a real broker, schedule files, and the CLI's errors."""

import json
import subprocess
import sys
import uuid

import pytest

from schemas.messages import decode_job
from stream.snapshots import ScheduleError, jobs_for, load_schedule, publish_snapshot, snapshot_id
from synthweb.config import load_settings
from tests.support.stream import REPO_ROOT, read_topic, worker_env

SEEDS = """\
# two sites, one of them with two seeds
https://www.example.org/news/
example.org
blog.example.net
"""


def test_jobs_group_seeds_by_registered_domain():
    jobs = jobs_for(["https://www.example.org/a", "https://example.org/", "https://blog.example.net/"], "s1", 7)
    assert [(j.domain, j.seeds, j.max_pages) for j in jobs] == [
        ("example.org", ["https://www.example.org/a", "https://example.org/"], 7),
        ("example.net", ["https://blog.example.net/"], 7),
    ]


def test_snapshot_ids_are_named_timestamped_and_unique():
    ids = {snapshot_id("weekly") for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("weekly-20") for i in ids)
    with pytest.raises(ValueError, match="bad snapshot name"):
        snapshot_id("no spaces please")


@pytest.mark.kafka
def test_publish_snapshot_sends_one_valid_job_per_site(kafka, tmp_path):
    env = worker_env(kafka.bootstrap, f"snap-{uuid.uuid4().hex[:6]}", f"chdb:///{tmp_path}/store")
    settings = load_settings({k: v for k, v in env.items() if k.startswith("SYNTHWEB_")})
    settings.set("SYNTHWEB_MAX_PAGES_PER_SITE", 25, priority="cmdline")
    (tmp_path / "seeds.txt").write_text(SEEDS)
    snapshot, n_jobs = publish_snapshot([f"@{tmp_path / 'seeds.txt'}"], name="nightly", settings=settings)
    assert n_jobs == 2 and snapshot.startswith("nightly-")
    records = read_topic(kafka.bootstrap, env["SYNTHWEB_TOPIC_JOBS"])
    jobs = {r.key.decode(): decode_job(r.value) for r in records}
    assert sorted(jobs) == ["example.net", "example.org"]
    assert {j.snapshot for j in jobs.values()} == {snapshot}
    assert jobs["example.org"].seeds == ["https://www.example.org/news/", "https://example.org/"]
    assert all(j.max_pages == 25 for j in jobs.values())
    # the topics were created with the configured partitions
    admin = kafka.admin()
    try:
        described = admin.describe_topics([env["SYNTHWEB_TOPIC_JOBS"], env["SYNTHWEB_TOPIC_PAGES"]])
    finally:
        admin.close()
    assert [len(t["partitions"]) for t in described] == [3, 3]


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "synthweb.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )


@pytest.mark.kafka
def test_snapshot_cli_prints_id_and_job_count(kafka, tmp_path):
    env = worker_env(kafka.bootstrap, f"cli-{uuid.uuid4().hex[:6]}", f"chdb:///{tmp_path}/store")
    (tmp_path / "seeds.txt").write_text(SEEDS)
    result = _cli("snapshot", "--name", "adhoc", str(tmp_path / "seeds.txt"), env=env)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["jobs"] == 2 and printed["snapshot"].startswith("adhoc-")


def test_snapshot_cli_fails_with_one_line_on_bad_seeds_or_no_broker(tmp_path):
    env = worker_env("127.0.0.1:1", "nobroker", f"chdb:///{tmp_path}/store")
    (tmp_path / "bad.txt").write_text("not a seed!\n")
    (tmp_path / "good.txt").write_text("example.org\n")
    for args in (["snapshot", str(tmp_path / "bad.txt")], ["snapshot", str(tmp_path / "good.txt")]):
        result = _cli(*args, env=env)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("synthweb: error:"), result.stderr
    assert "malformed seed" in _cli("snapshot", str(tmp_path / "bad.txt"), env=env).stderr


def _schedule(tmp_path, entries) -> str:
    path = tmp_path / "schedule.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return str(path)


def test_schedule_file_is_parsed_with_seed_paths_relative_to_it(tmp_path):
    (tmp_path / "seeds.txt").write_text(SEEDS)
    entries = load_schedule(_schedule(tmp_path, [{"name": "weekly", "cron": "0  3 * * 1", "seeds": "seeds.txt"}]))
    assert [(e.name, e.cron, e.seeds) for e in entries] == [("weekly", "0 3 * * 1", tmp_path / "seeds.txt")]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("{not json", "invalid JSON"),
        ({"name": "x"}, "expected a JSON list"),
        ([{"name": "a", "cron": "0 3 * * 1"}], "missing or empty seeds"),
        ([{"name": "a", "cron": "61 3 * * 1", "seeds": "seeds.txt"}], "bad cron expression"),
        ([{"name": "a", "cron": "0 3 * *", "seeds": "seeds.txt"}], "bad cron expression"),
        ([{"name": "a b", "cron": "0 3 * * 1", "seeds": "seeds.txt"}], "bad name"),
        ([{"name": "a", "cron": "0 3 * * 1", "seeds": "missing.txt"}], "cannot read seed file"),
        ([{"name": "a", "cron": "0 3 * * 1", "seeds": "seeds.txt", "when": 1}], "unknown keys when"),
        ([{"name": "a", "cron": "0 3 * * 1", "seeds": "seeds.txt"}] * 2, "duplicate names a"),
    ],
)
def test_schedule_errors_name_the_entry_and_the_problem(tmp_path, entries, message):
    (tmp_path / "seeds.txt").write_text(SEEDS)
    with pytest.raises(ScheduleError, match=message):
        load_schedule(_schedule(tmp_path, entries))


def test_worker_refuses_a_bad_schedule_with_one_line(tmp_path):
    env = worker_env("127.0.0.1:1", "badsched", f"chdb:///{tmp_path}/store")
    env["SYNTHWEB_SCHEDULE"] = _schedule(tmp_path, [{"name": "a", "cron": "every day", "seeds": "s.txt"}])
    result = _cli("worker", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("synthweb: error:") and "bad cron expression" in result.stderr


@pytest.mark.kafka
def test_app_registers_a_leader_crontab_per_schedule_entry_that_publishes(kafka, tmp_path):
    import asyncio

    from stream.app import create_app

    env = worker_env(kafka.bootstrap, f"cron-{uuid.uuid4().hex[:6]}", f"chdb:///{tmp_path}/store")
    (tmp_path / "seeds.txt").write_text(SEEDS)
    env["SYNTHWEB_SCHEDULE"] = _schedule(
        tmp_path,
        [
            {"name": "daily", "cron": "0 4 * * *", "seeds": "seeds.txt"},
            {"name": "hourly", "cron": "5 * * * *", "seeds": "seeds.txt"},
        ],
    )
    settings = load_settings({k: v for k, v in env.items() if k.startswith("SYNTHWEB_")})
    plain = [t.__name__ for t in create_app(load_settings({"SYNTHWEB_SCHEDULE": ""}))._app_tasks]
    app = create_app(settings)
    tasks = [t.__name__ for t in app._app_tasks]
    assert sorted(set(tasks) - set(plain)) == ["snapshot_daily", "snapshot_hourly"]
    assert sorted(app.synthweb_snapshots) == ["daily", "hourly"]
    asyncio.run(app.synthweb_snapshots["daily"]())  # what the crontab runs on the leader at 04:00 UTC
    jobs = [decode_job(r.value) for r in read_topic(kafka.bootstrap, env["SYNTHWEB_TOPIC_JOBS"])]
    assert len(jobs) == 2 and all(j.snapshot.startswith("daily-") for j in jobs)


def test_worker_without_a_broker_fails_with_one_line(tmp_path):
    result = _cli("worker", env=worker_env("127.0.0.1:1", "nobroker", f"chdb:///{tmp_path}/store"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("synthweb: error: cannot reach Kafka"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
