"""``jobs cancel``, ``runs show [--logs] [--follow]``, Ctrl-C on ``jobs run --wait``, and
what ``health`` says about a bad app, a cleanly stopped daemon and ``--failures``: real
``jobsys`` processes against a real database (and a real daemon where it matters)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.store.models import AuditLog
from jobsys.store.queries import get_run
from tests.process_helpers import ROOT, daemon_process, jobsys_env, run_cli, wait_for

pytestmark = pytest.mark.slow  # real CLI processes, tens of seconds

APP = str(ROOT / "tests" / "apps" / "isolation_app.py")


def _as_from_a_terminal() -> None:
    # Ctrl-C reaches a command typed at a terminal with SIGINT's default action. A test
    # run started in the background by a shell without job control inherits SIGINT
    # ignored (POSIX), and so would the CLI (Python keeps an inherited SIG_IGN).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str], db_url: str, out_path: Path) -> subprocess.Popen[str]:
    with open(out_path, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "jobsys", *args],
            env=jobsys_env(db_url, JOBSYS_APP=APP, PYTHONUNBUFFERED="1"),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_as_from_a_terminal,
        )


def queued_id(text: str) -> int:
    match = re.search(r"run (\d+) queued", text)
    assert match, text
    return int(match.group(1))


def test_ctrl_c_on_wait_says_how_to_cancel_then_cancel(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    out_path = tmp_path / "wait.log"
    proc = start(["jobs", "run", "ok", "--wait"], db_url, out_path)  # no daemon: stays QUEUED
    try:
        run_id = queued_id(
            wait_for(lambda: "queued" in out_path.read_text() and out_path.read_text())
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out_path.read_text()
    assert (
        f"run #{run_id} continues in the background; cancel it with: jobsys jobs cancel {run_id}"
        in text
    )
    assert "Traceback" not in text
    assert get_run(engine, run_id, with_logs=False)["status"] == "QUEUED"

    cancelled = run_cli(["jobs", "cancel", str(run_id)], db_url, JOBSYS_APP=APP)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"run {run_id} cancelled" in cancelled.stdout
    assert get_run(engine, run_id, with_logs=False)["status"] == "CANCELLED"
    with engine.connect() as conn:
        audited = conn.execute(
            select(col(AuditLog.actor), col(AuditLog.target_id)).where(
                col(AuditLog.action) == "run.cancel"
            )
        ).all()
    assert [tuple(row) for row in audited] == [("cli", str(run_id))]

    again = run_cli(["jobs", "cancel", str(run_id)], db_url, JOBSYS_APP=APP)
    assert again.returncode == 1
    assert "already finished (CANCELLED)" in again.stderr
    for bad, message in (("999", "unknown job run 999"), ("x", "RUN_ID: must be an integer")):
        out = run_cli(["jobs", "cancel", bad], db_url, JOBSYS_APP=APP)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        shown = run_cli(["runs", "show", bad], db_url, JOBSYS_APP=APP)
        assert shown.returncode == 2 and message in shown.stderr, shown.stderr


def test_runs_show_follows_a_running_run_until_it_is_cancelled(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    with daemon_process(db_url, tmp_path, engine, JOBSYS_APP=APP):
        queued = run_cli(
            ["jobs", "run", "cooperative", "--params", '{"seconds": 60}'], db_url, JOBSYS_APP=APP
        )
        assert queued.returncode == 0, queued.stderr
        run_id = queued_id(queued.stdout)
        wait_for(lambda: get_run(engine, run_id, with_logs=False)["status"] == "RUNNING", 30)

        follow_path = tmp_path / "follow.log"
        follow = start(["runs", "show", str(run_id), "--follow"], db_url, follow_path)
        try:
            wait_for(lambda: "logs:" in follow_path.read_text())
            assert follow.poll() is None  # still following a RUNNING run
            cancel = run_cli(["jobs", "cancel", str(run_id)], db_url, JOBSYS_APP=APP)
            assert cancel.returncode == 0, cancel.stderr
            assert "cancel requested" in cancel.stdout
            assert follow.wait(30) == 1  # like jobs run --wait: 1 unless SUCCESS
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait()
        text = follow_path.read_text()
        assert "status        RUNNING" in text and "job_name      cooperative" in text
        # written after --follow started: streamed, then the end
        assert "stopping: cancel asked" in text
        assert text.splitlines()[-1].startswith(f"run {run_id} CANCELLED")

    logs = run_cli(["runs", "show", str(run_id), "--logs"], db_url)
    assert logs.returncode == 0 and "stopping: cancel asked" in logs.stdout
    plain = run_cli(["runs", "show", str(run_id)], db_url)
    assert plain.returncode == 0 and "status        CANCELLED" in plain.stdout
    assert "stopping" not in plain.stdout
    as_json = json.loads(run_cli(["runs", "show", str(run_id), "--json", "--logs"], db_url).stdout)
    assert as_json["status"] == "CANCELLED" and as_json["id"] == run_id
    assert any("stopping" in line["message"] for line in as_json["logs"])


# -- health -----------------------------------------------------------------------------
def test_health_with_an_app_that_does_not_load_is_unknown(db_url: str) -> None:
    out = run_cli(["health"], db_url, JOBSYS_APP="nonexistent_app_module")
    assert out.returncode == 3, out.stdout + out.stderr
    assert out.stdout.startswith("JOBSYS UNKNOWN - ")
    assert "nonexistent_app_module" in out.stdout
    as_json = run_cli(["health", "--json"], db_url, JOBSYS_APP="nonexistent_app_module")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 3 and report["status"] == "UNKNOWN"


def test_health_after_a_clean_stop_says_when(db_url: str, engine: Engine, tmp_path: Path) -> None:
    never = run_cli(["health"], db_url)
    assert never.returncode == 2 and "none has run" in never.stdout
    with daemon_process(db_url, tmp_path, engine, JOBSYS_APP=APP) as daemon:
        # The daemon registers before it handles SIGTERM (Daemon.run: start(), then the
        # handlers): wait for "daemon started", logged just before them.
        wait_for(lambda: "daemon started" in daemon.log(), 30)
        time.sleep(1)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    out = run_cli(["health"], db_url)
    assert out.returncode == 2
    assert re.search(
        r"JOBSYS CRITICAL - no daemon running since \d{4}-\d\d-\d\dT[\d:.]+Z "
        rf"\(the last one, \S+ pid {daemon.pid}, stopped cleanly\)",
        out.stdout,
    ), out.stdout


def test_health_failures_says_what_it_counts() -> None:
    helped = run_cli(["health", "--help"], "sqlite:///unused.db")
    text = " ".join(helped.stdout.split())
    assert "manual runs of a single job belong to no schedule and are not counted" in text
