"""The real daemon process: isolation of misbehaving jobs, cancel, wake-ups, SIGTERM,
SCHEDULE_DAEMON_ENABLED=false, the health command against it, and what it imports."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from jobsys.loader import load_app
from jobsys.manual import create_manual_batch
from jobsys.store.models import JobBatch, JobSchedule
from jobsys.store.queries import get_run
from jobsys.store.rows import RunWithLogs
from jobsys.store.runs import request_cancel
from jobsys.store.schedules import set_enabled
from jobsys.store.workers import notify_daemons
from tests.process_helpers import ROOT, daemon_process, run_cli, wait_for, worker_rows

APP = str(ROOT / "tests" / "apps" / "isolation_app.py")

#: The isolation tests run in both execution modes (design 6.5): the warm worker pool
#: (the default) and a fresh process per run.
MODES = pytest.mark.parametrize("isolation", ["pool", "process"])


def now() -> datetime:
    return datetime.now(UTC)


def queue(engine: Engine, job: str, **params: object) -> int:
    app = load_app(APP)
    created = create_manual_batch(
        engine, app, mode="JOB", job=job, params=params or None, now=now(), actor="test"
    )
    notify_daemons(engine, now(), timedelta(minutes=5))
    return created.run_ids[0]


def finished(engine: Engine, run_id: int, timeout: float = 20) -> RunWithLogs:
    def done() -> RunWithLogs | None:
        run = get_run(engine, run_id)
        return run if run["status"] not in ("QUEUED", "RUNNING") else None

    result: RunWithLogs = wait_for(done, timeout)
    return result


@MODES
def test_isolation_each_failure_is_contained(
    db_url: str, engine: Engine, tmp_path: Path, isolation: str
) -> None:
    with daemon_process(
        db_url,
        tmp_path,
        engine,
        JOBSYS_APP=APP,
        JOBSYS_CONCURRENCY="6",
        JOBSYS_ISOLATION=isolation,
    ) as daemon:
        ids = {name: queue(engine, name) for name in ("raises", "exits", "segfaults", "hangs")}
        results = {name: finished(engine, rid) for name, rid in ids.items()}
        assert results["raises"]["status"] == "FAILED"
        assert results["raises"]["error"] == "ValueError: bad input 42"
        assert results["exits"]["status"] == "FAILED"
        assert "sys.exit(3)" in str(results["exits"]["error"])
        assert results["segfaults"]["status"] == "FAILED"
        assert "SIGSEGV" in str(results["segfaults"]["error"])
        assert results["hangs"]["status"] == "FAILED"
        assert "timed out after 1s" in str(results["hangs"]["error"])
        raised_logs = " ".join(
            str(line["message"]) for line in get_run(engine, ids["raises"])["logs"]
        )
        assert "Traceback" in raised_logs
        # the daemon is unharmed and keeps working
        assert daemon.proc.poll() is None
        ok = finished(engine, queue(engine, "ok"))
        assert ok["status"] == "SUCCESS" and ok["progress_done"] == 1


@MODES
def test_cancel_running_jobs(db_url: str, engine: Engine, tmp_path: Path, isolation: str) -> None:
    with daemon_process(
        db_url, tmp_path, engine, JOBSYS_APP=APP, JOBSYS_ISOLATION=isolation
    ) as daemon:
        coop = queue(engine, "cooperative", seconds=60)
        stub = queue(engine, "stubborn")
        wait_for(
            lambda: (
                get_run(engine, coop)["status"] == "RUNNING"
                and get_run(engine, stub)["status"] == "RUNNING"
            )
        )
        started = time.monotonic()
        for rid in (coop, stub):
            assert request_cancel(engine, rid, now()) == "RUNNING"
        notify_daemons(engine, now(), timedelta(minutes=5))
        a = finished(engine, coop)
        assert a["status"] == "CANCELLED"
        b = finished(engine, stub, timeout=30)  # ignores SIGTERM: killed after the grace
        assert b["status"] == "CANCELLED"
        assert time.monotonic() - started < 20
        assert daemon.proc.poll() is None


def test_wake_up_starts_a_run_at_once_despite_a_long_poll(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    with daemon_process(
        db_url, tmp_path, engine, JOBSYS_APP=APP, SCHEDULE_POLL_INTERVAL_MS="600000"
    ):
        time.sleep(0.5)  # let it fall asleep on its 10-minute poll
        out = run_cli(["jobs", "run", "ok", "--wait", "--timeout", "20"], db_url, JOBSYS_APP=APP)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "woke 1 daemon" in out.stdout
        assert "SUCCESS" in out.stdout and "all good" in out.stdout


@MODES
def test_sigterm_lets_a_running_job_finish(
    db_url: str, engine: Engine, tmp_path: Path, isolation: str
) -> None:
    with daemon_process(
        db_url,
        tmp_path,
        engine,
        JOBSYS_APP=APP,
        JOBSYS_SHUTDOWN_GRACE_MS="20000",
        JOBSYS_ISOLATION=isolation,
    ) as daemon:
        rid = queue(engine, "cooperative", seconds=2)
        wait_for(lambda: get_run(engine, rid)["status"] == "RUNNING")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    assert get_run(engine, rid)["status"] == "SUCCESS"
    (worker,) = [w for w in worker_rows(engine) if w.pid == daemon.pid]
    assert worker.status == "STOPPED"


@MODES
def test_sigterm_cancels_jobs_that_outlive_the_grace(
    db_url: str, engine: Engine, tmp_path: Path, isolation: str
) -> None:
    with daemon_process(
        db_url,
        tmp_path,
        engine,
        JOBSYS_APP=APP,
        JOBSYS_SHUTDOWN_GRACE_MS="500",
        JOBSYS_ISOLATION=isolation,
    ) as daemon:
        rid = queue(engine, "stubborn")
        wait_for(lambda: get_run(engine, rid)["status"] == "RUNNING")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    run = get_run(engine, rid)
    assert run["status"] == "CANCELLED" and "shutting down" in str(run["error"])
    (worker,) = [w for w in worker_rows(engine) if w.pid == daemon.pid]
    assert worker.status == "STOPPED"
    # every lease is released: the job can run again at once
    with daemon_process(db_url, tmp_path, engine, name="second", JOBSYS_APP=APP):
        assert finished(engine, queue(engine, "ok"))["status"] == "SUCCESS"


def test_daemon_disabled_exits_0(db_url: str) -> None:
    out = run_cli(["daemon"], db_url, SCHEDULE_DAEMON_ENABLED="false")
    assert out.returncode == 0
    assert "SCHEDULE_DAEMON_ENABLED=false" in out.stderr


def test_daemon_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    out = run_cli(["daemon"], f"sqlite:///{tmp_path}/new.db")
    assert out.returncode == 2
    assert "jobsys migrate" in out.stderr and "Traceback" not in out.stderr


def test_health_follows_the_daemon(db_url: str, engine: Engine, tmp_path: Path) -> None:
    none = run_cli(["health"], db_url)
    assert none.returncode == 2 and "CRITICAL" in none.stdout
    with daemon_process(db_url, tmp_path, engine, JOBSYS_APP=APP) as daemon:
        fresh = run_cli(["health", "--json"], db_url)
        assert fresh.returncode == 0, fresh.stdout
        report = json.loads(fresh.stdout)
        assert report["status"] == "OK" and report["daemon_running"] is True
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(10)
        time.sleep(2.5)
        stale = run_cli(["health", "--max-age", "2", "--warn-age", "1"], db_url)
        assert stale.returncode == 2 and "CRITICAL" in stale.stdout, stale.stdout


@pytest.mark.parametrize(
    "url",
    ["mysql://root@127.0.0.1:1/nothing", "sqlite:////nonexistent-dir/x/y.db"],
)
def test_health_unknown_when_the_database_is_unreachable(url: str) -> None:
    out = run_cli(["health"], url)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "UNKNOWN" in out.stdout or "UNKNOWN" in out.stderr


#: ``jobsys daemon`` as the CLI runs it; on the way out (after its graceful stop) the
#: daemon process (not its forked children) writes the names of the modules it loaded.
_DAEMON_LISTING_MODULES = """
import json, os, sys
from jobsys.cli import main
pid = os.getpid()
code = main(["daemon"])
if os.getpid() == pid:
    with open(os.environ["MODULES_OUT"], "w") as out:
        json.dump(sorted(sys.modules), out)
sys.exit(code)
"""

#: What the daemon process must never load (issue 9 item 5: ~16 MiB it would keep for
#: good); the definitions sync and the schema check that need them run in a child.
NOT_IN_THE_DAEMON = (
    "sqlmodel",
    "pydantic",
    "pydantic_core",
    "sqlalchemy.orm",
    "alembic",
    "jobsys.store.models",
    "jobsys.store.schedules",
)


def test_the_daemon_process_never_loads_the_orm(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Start-up, a due slot with a missed one before it (the slow firing path), a cron
    run and a manual run, alerts (a webhook nobody answers), retention, a graceful stop:
    none of it loads SQLModel, pydantic or the ORM into the daemon process."""
    app = load_app(APP)
    out = tmp_path / "modules.json"
    set_enabled(engine, app, "development", "every-minute", True, now=now(), actor="test")
    with engine.begin() as conn:  # two slots due: one missed (past the grace), one to fire
        conn.execute(
            update(JobSchedule)
            .where(JobSchedule.id == "every-minute")  # type: ignore[arg-type]
            .values(next_run_at=now().replace(second=0, microsecond=0) - timedelta(minutes=2))
        )
    with daemon_process(
        db_url,
        tmp_path,
        engine,
        argv=("-c", _DAEMON_LISTING_MODULES),
        JOBSYS_APP=APP,
        MODULES_OUT=str(out),
        JOBSYS_ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook",
    ) as daemon:

        def statuses() -> list[str]:
            with engine.connect() as conn:
                return [
                    s
                    for (s,) in conn.execute(
                        select(JobBatch.status).where(  # type: ignore[call-overload]
                            JobBatch.schedule_id == "every-minute"
                        )
                    )
                ]

        wait_for(lambda: "SKIPPED" in statuses() and "SUCCESS" in statuses(), 30)
        assert finished(engine, queue(engine, "ok"))["status"] == "SUCCESS"
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log()
    loaded = set(json.loads(out.read_text()))
    assert {"jobsys.daemon", "jobsys.store.firing", "jobsys.store.alerts"} <= loaded
    assert "jobsys.store.retention" in loaded
    found = [
        bad
        for bad in NOT_IN_THE_DAEMON
        if any(name == bad or name.startswith(bad + ".") for name in loaded)
    ]
    assert found == [], f"the daemon process loaded {found}"
