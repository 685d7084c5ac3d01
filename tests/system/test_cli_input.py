"""Bad input to real ``jobsys`` processes: one line, a documented exit code, no traceback.

Covers the numeric settings' ranges (``jobsys.config.RANGES``, documented in
docs/configuration.md), numeric flags, ``--params`` that is not text, SQLite files that
only ``migrate``/``demo`` may create, and ``cron next`` at the end of the calendar.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from jobsys.config import RANGES, Settings
from jobsys.errors import ConfigError
from tests.process_helpers import ROOT

APP = str(ROOT / "tests" / "apps" / "isolation_app.py")


def cli(
    args: list[str],
    cwd: Path | None = None,
    timeout: float = 60,
    *,
    extra_env: Mapping[str, str] | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JOBSYS_", "SCHEDULE_", "DATABASE_URL", "LOCK_", "PORT"))
    }
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env)
    full_env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "jobsys", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


# -- settings: every numeric one has a range --------------------------------------------
def test_every_numeric_setting_has_a_range() -> None:
    numeric = [f.name for f in dataclasses.fields(Settings) if f.type == "int"]
    assert len(numeric) == len(RANGES), (numeric, list(RANGES))


@pytest.mark.parametrize("name", sorted(RANGES))
def test_range_bounds_are_enforced(name: str) -> None:
    low, high = RANGES[name]
    Settings.from_environ({name: str(low)})
    Settings.from_environ({name: f" {high} "})
    message = f"{name}: must be an integer between {low} and {high}"
    for raw in (str(low - 1), str(high + 1), "", "  ", "9" * 40, "1e3", "1.0", "0x10", "ten"):
        with pytest.raises(ConfigError, match=re.escape(message)):
            Settings.from_environ({name: raw})
    # Full-width (and other non-ASCII) digits: int() would take them.
    wide = "".join(chr(0xFF10 + int(d)) for d in str(max(low, 1)))
    with pytest.raises(ConfigError, match=re.escape(f"(got {wide!r})")):
        Settings.from_environ({name: wide})


def test_ranges_are_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name, (low, high) in RANGES.items():
        row = re.search(rf"^\| `{name}` \|.*\| {low} to {high} \|$", text, re.MULTILINE)
        assert row, f"configuration.md: the row of {name} should end with '| {low} to {high} |'"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("LOCK_TIMEOUT_MS", "99999999999999999999999999"),
        ("JOBSYS_CONCURRENCY", "99999999999999999999999999"),
        ("JOBSYS_CONCURRENCY", ""),
        ("SCHEDULE_POLL_INTERVAL_MS", "100000000000000000000000000"),
        ("PORT", "８０００"),
        ("JOBSYS_ALERT_HEARTBEAT_SECONDS", "99999999999999999999"),
    ],
)
def test_bad_setting_exits_2_with_one_line(name: str, raw: str) -> None:
    out = cli(["jobs", "list"], extra_env={name: raw})
    assert out.returncode == 2
    low, high = RANGES[name]
    assert one_error_line(out) == (
        f"jobsys: error: {name}: must be an integer between {low} and {high} (got {raw!r})"
    )


def test_out_of_range_ports_of_web_and_daemon(sqlite_url: str) -> None:
    # Before: tracebacks (OverflowError from the socket layer).
    web = cli(["web"], DATABASE_URL=sqlite_url, PORT="70000")
    assert web.returncode == 2
    assert "PORT: must be an integer between 1 and 65535 (got '70000')" in one_error_line(web)
    daemon = cli(["daemon"], DATABASE_URL=sqlite_url, JOBSYS_WAKE_PORT="70000", timeout=30)
    assert daemon.returncode == 2
    assert "JOBSYS_WAKE_PORT: must be an integer between 0 and 65535" in one_error_line(daemon)


def test_health_with_a_bad_setting_is_unknown() -> None:
    out = cli(["health"], LOCK_TIMEOUT_MS="99999999999999999999999999")
    assert out.returncode == 3
    assert out.stdout.startswith("JOBSYS UNKNOWN - LOCK_TIMEOUT_MS: must be an integer")
    assert "Traceback" not in out.stderr


# -- flags ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["health", "--max-age", "-1"], 3, "--max-age: must be a number of seconds above 0"),
        (["health", "--max-age", "0"], 3, "--max-age: must be a number"),
        (["health", "--max-age", "nan"], 3, "--max-age: must be a number"),
        (["health", "--warn-age", "inf"], 3, "--warn-age: must be a number"),
        (["health", "--failures", "0"], 3, "--failures: must be an integer between 1 and 1000"),
        (["web", "--port", "70000"], 2, "--port: must be an integer between 1 and 65535"),
        (["web", "--port", "０"], 2, "--port: must be an integer between 1 and 65535"),
        (["demo", "--port", "70000"], 2, "--port: must be an integer between 1 and 65535"),
        (["cron", "next", "* * * * *", "--count", "５"], 2, "--count: must be an integer"),
        (["jobs", "run", "ok", "--timeout", "nan"], 2, "--timeout: must be above 0"),
    ],
)
def test_bad_flags(
    args: list[str], code: int, message: str, sqlite_url: str, tmp_path: Path
) -> None:
    out = cli(args, cwd=tmp_path, DATABASE_URL=sqlite_url, JOBSYS_APP=APP)
    assert out.returncode == code, out.stdout + out.stderr
    assert message in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert not (tmp_path / "jobsys.db").exists()


def test_params_with_a_lone_surrogate_exit_2(db_url: str) -> None:
    out = cli(
        ["jobs", "run", "ok", "--params", '{"a": "\\ud800"}'], DATABASE_URL=db_url, JOBSYS_APP=APP
    )
    assert out.returncode == 2, out.stdout + out.stderr
    line = one_error_line(out)
    assert "--params" in line and "lone surrogate" in line
    assert "queued" not in out.stdout


# -- only migrate and demo create a SQLite file ----------------------------------------
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["schedules", "list"], 2),
        (["jobs", "run", "ok"], 2),
        (["admin", "token", "a@b.c"], 2),
        (["daemon"], 2),
        (["web", "--port", "1"], 2),
        (["migrate", "--check"], 1),
        (["health"], 3),
    ],
)
def test_commands_do_not_create_a_database(args: list[str], code: int, tmp_path: Path) -> None:
    path = tmp_path / "nonexistent" / "dir" / "x.db"
    out = cli(args, DATABASE_URL=f"sqlite:///{path}", JOBSYS_APP=APP, timeout=30)
    assert out.returncode == code, out.stdout + out.stderr
    expected = f"database file {path} does not exist; run `jobsys migrate` first"
    assert expected in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "nonexistent").exists()


def test_migrate_creates_the_database(tmp_path: Path) -> None:
    path = tmp_path / "new" / "x.db"
    out = cli(["migrate"], DATABASE_URL=f"sqlite:///{path}")
    assert out.returncode == 0, out.stderr
    assert path.exists()
    listed = cli(["schedules", "list"], DATABASE_URL=f"sqlite:///{path}")
    assert listed.returncode == 0, listed.stderr


# -- cron next at the end of the calendar ----------------------------------------------
def test_cron_next_says_when_there_are_no_more_slots() -> None:
    out = cli(["cron", "next", "* * * * *", "--after", "9999-12-31T23:59:00Z"])
    assert out.returncode == 0
    assert out.stdout == ""
    assert "no more slots after 9999-12-31T23:59:00Z" in one_error_line(out)
    as_json = cli(["cron", "next", "* * * * *", "--after", "9999-12-31T23:57:00Z", "--json"])
    assert as_json.stdout.strip() == '["9999-12-31T23:58:00Z", "9999-12-31T23:59:00Z"]'
    assert "no more slots after 9999-12-31T23:59:00Z" in one_error_line(as_json)
    full = cli(["cron", "next", "* * * * *", "--after", "2030-01-01T00:00:00Z", "--count", "2"])
    assert full.returncode == 0 and full.stderr == ""
