"""The command line, run as a real child process (``python -m jobsys``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CYCLE_APP = str(ROOT / "tests" / "apps" / "cycle_app.py")


def run(args: list[str], db_url: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "DATABASE_URL"))
    }
    full_env["PYTHONPATH"] = str(ROOT)
    if db_url:
        full_env["DATABASE_URL"] = db_url
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "jobsys", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def test_help_lists_subcommands() -> None:
    out = run(["--help"])
    assert out.returncode == 0
    for cmd in ("migrate", "cron", "schedules", "jobs"):
        assert cmd in out.stdout


def test_migrate_then_schedules_list_shows_demo_schedules_disabled(empty_db_url: str) -> None:
    assert run(["migrate", "--check"], empty_db_url).returncode == 1
    first = run(["migrate"], empty_db_url)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    again = run(["migrate"], empty_db_url)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert run(["migrate", "--check"], empty_db_url).returncode == 0
    listed = run(["schedules", "list", "--json"], empty_db_url)
    assert listed.returncode == 0, listed.stderr
    schedules = json.loads(listed.stdout)
    assert [s["id"] for s in schedules] == [
        "daily-full-sync",
        "hourly-matching",
        "feed-refresh",
        "dev-quick-test",
    ]
    assert not any(s["enabled"] for s in schedules)
    prod = run(["schedules", "list", "--json"], empty_db_url, JOBSYS_ENV="production")
    assert [s["id"] for s in json.loads(prod.stdout)] == [
        "daily-full-sync",
        "hourly-matching",
        "feed-refresh",
    ]


def test_enable_disable(db_url: str) -> None:
    enabled = run(["schedules", "enable", "feed-refresh"], db_url)
    assert enabled.returncode == 0, enabled.stderr
    assert "enabled; next run" in enabled.stdout
    listed = {s["id"]: s for s in json.loads(run(["schedules", "list", "--json"], db_url).stdout)}
    assert listed["feed-refresh"]["enabled"] and listed["feed-refresh"]["next_run_at"].endswith("Z")
    assert run(["schedules", "disable", "feed-refresh"], db_url).returncode == 0
    unknown = run(["schedules", "enable", "nope"], db_url)
    assert unknown.returncode == 2 and "unknown schedule 'nope'" in unknown.stderr


def test_commands_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    out = run(["schedules", "list"], f"sqlite:///{tmp_path}/empty.db")
    assert out.returncode == 2
    assert "jobsys migrate" in out.stderr


def test_jobs_list_json() -> None:
    out = run(["jobs", "list", "--json"])
    jobs = json.loads(out.stdout)
    names = [j["name"] for j in jobs]
    for job in jobs:
        for dep in job["depends_on"]:
            assert names.index(dep) < names.index(job["name"])


def test_jobs_list_shows_each_jobs_isolation() -> None:
    app = str(ROOT / "tests" / "system" / "test_executor.py")
    jobs = {
        j["name"]: j for j in json.loads(run(["jobs", "list", "--json"], JOBSYS_APP=app).stdout)
    }
    assert (jobs["noop"]["isolation"], jobs["fresh"]["isolation"]) == ("pool", "process")
    out = run(["jobs", "list"], JOBSYS_APP=app, JOBSYS_ISOLATION="process")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert "ISOLATION" in header.split()
    assert {line.split()[0]: line.split()[3] for line in rows}["noop"] == "process"


def test_cron_next_fall_back_day() -> None:
    out = run(
        [
            "cron",
            "next",
            "30 1 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2027-11-06T12:00:00Z",
            "--count",
            "2",
            "--json",
        ]
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cron", "validate", "61 * * * *"], "minute"),
        (["cron", "validate", "0 0 30 2 *"], "never"),
        (["cron", "validate", "0 * * * *", "--tz", "Mars/Base"], "Mars/Base"),
        (["cron", "next", "*/0 * * * *"], "minute"),
        (["cron", "next", "0 * * * *", "--after", "yesterday"], "--after"),
        (["cron", "next", "0 * * * *", "--count", "0"], "--count"),
    ],
)
def test_cron_errors_exit_2(args: list[str], message: str) -> None:
    out = run(args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_cron_validate_ok() -> None:
    out = run(["cron", "validate", "*/15 9-17 * * MON-FRI", "--tz", "Europe/Berlin"])
    assert out.returncode == 0 and out.stdout.startswith("valid")


@pytest.mark.parametrize(
    "args",
    [["jobs", "list"], ["schedules", "list"], ["schedules", "enable", "x"], ["migrate"]],
)
def test_dependency_cycle_exits_2_with_the_cycle(args: list[str], tmp_path: Path) -> None:
    out = run(["--app", CYCLE_APP, *args], f"sqlite:///{tmp_path}/c.db")
    if args == ["migrate"]:
        # migrate does not load the app: it must work whatever the app says.
        assert out.returncode == 0
        return
    assert out.returncode == 2
    assert "dependency cycle: a -> b -> c -> a" in out.stderr
    env_out = run(args, f"sqlite:///{tmp_path}/c.db", JOBSYS_APP=CYCLE_APP)
    assert env_out.returncode == 2 and "dependency cycle" in env_out.stderr


def test_production_without_database_url_exits_2() -> None:
    out = run(["schedules", "list"], JOBSYS_ENV="production")
    assert out.returncode == 2 and "DATABASE_URL" in out.stderr


def test_bad_database_url_exits_2() -> None:
    out = run(["schedules", "list"], "postgres://x@y/z")
    assert out.returncode == 2 and "unsupported scheme" in out.stderr


def test_demo_refuses_production(tmp_path: Path) -> None:
    out = run(["demo"], f"sqlite:///{tmp_path}/p.db", JOBSYS_ENV="production", SECRET_KEY="x" * 32)
    assert out.returncode == 2 and "local machine" in out.stderr
