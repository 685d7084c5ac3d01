"""``jobsys.enqueue`` from a separate (real child) process, SQLite and MariaDB: a
committed call runs (a real daemon, woken after the commit, picks it up), a rolled-back
one leaves nothing, bad params fail before anything is written, and ``DATABASE_URL``
alone is enough."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

import jobsys
from jobsys.store.models import JobBatch, JobLog, JobRun
from tests.process_helpers import ROOT, daemon_process, jobsys_env, wait_for

APP = str(ROOT / "tests" / "apps" / "enqueue_app.py")

#: The child: runs one scenario, prints one JSON line (the run id or the error).
CHILD = textwrap.dedent(
    """
    import json, os, sys
    from sqlalchemy import create_engine, text
    import jobsys
    from jobsys.loader import load_app
    from jobsys.store.db import normalize_url

    scenario, params = sys.argv[1], json.loads(sys.argv[2])
    try:
        if scenario == "url-only":  # DATABASE_URL and JOBSYS_APP from the environment
            print(json.dumps({"run_id": jobsys.enqueue("greet", params)}))
            sys.exit(0)
        app = load_app(os.environ["JOBSYS_APP"])
        engine = create_engine(normalize_url(os.environ["DATABASE_URL"]))
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))  # the caller's own work, same transaction
            run_id = jobsys.enqueue("greet", params, app=app, connection=conn)
            if scenario == "commit":
                conn.commit()
            else:
                conn.rollback()
        print(json.dumps({"run_id": run_id}))
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    """
)


def child(db_url: str, scenario: str, params: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, scenario, json.dumps(params)],
        env=jobsys_env(db_url, JOBSYS_APP=APP),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(JobRun)).scalar_one()
        batches = conn.execute(select(func.count()).select_from(JobBatch)).scalar_one()
    return runs, batches


def run_row(engine: Engine, run_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(JobRun).where(col(JobRun.id) == run_id)).first()


def test_enqueue_is_public_and_lazy() -> None:
    assert "enqueue" in jobsys.__all__
    done = subprocess.run(
        [sys.executable, "-c", "import sys, jobsys; print('sqlalchemy' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert done.stdout.strip() == "False"  # import jobsys stays light
    assert callable(jobsys.enqueue)


def test_committed_enqueue_runs_and_rolled_back_leaves_nothing(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    # A long poll: the run can only start this soon if the commit woke the daemon.
    with daemon_process(
        db_url, tmp_path, engine, JOBSYS_APP=APP, SCHEDULE_POLL_INTERVAL_MS="60000"
    ) as daemon:
        time.sleep(0.5)  # past the daemon's first poll
        rolled = child(db_url, "rollback", {"name": "nobody"})
        assert "run_id" in rolled
        assert counts(engine) == (0, 0)
        assert run_row(engine, rolled["run_id"]) is None

        bad = child(db_url, "commit", {"name": 5})
        assert bad["error"] == "DefinitionError"
        assert bad["message"] == "job 'greet': param 'name': expected string, got integer"
        assert child(db_url, "commit", {})["message"] == "job 'greet': param 'name' is required"
        assert child(db_url, "commit", {"nme": "x"})["message"].startswith(
            "job 'greet': unknown param(s): nme"
        )
        assert counts(engine) == (0, 0)

        started = time.monotonic()
        ok = child(db_url, "commit", {"name": "ada", "times": 2})
        run_id = ok["run_id"]
        row = run_row(engine, run_id)
        assert (
            row is not None and row.trigger == "EVENT" and row.params == {"name": "ada", "times": 2}
        )
        wait_for(lambda: run_row(engine, run_id).status == "SUCCESS", timeout=20)
        assert time.monotonic() - started < 20, "not woken: waited for the 60 s poll"
        with engine.connect() as conn:
            lines = (
                conn.execute(select(col(JobLog.message)).where(col(JobLog.run_id) == run_id))
                .scalars()
                .all()
            )
        assert "hello ada x2" in lines, daemon.log()
        with engine.connect() as conn:
            batch = conn.execute(select(JobBatch).where(col(JobBatch.id) == row.batch_id)).one()
        assert (batch.trigger, batch.mode, batch.total_runs) == ("EVENT", "JOB", 1)


def test_enqueue_with_only_database_url(db_url: str, engine: Engine) -> None:
    result = child(db_url, "url-only", {"name": "bob"})
    row = run_row(engine, result["run_id"])
    assert row is not None
    assert (row.status, row.trigger, row.job_name) == ("QUEUED", "EVENT", "greet")
    assert row.params == {"name": "bob"}
    bad = child(db_url, "url-only", {"name": "bob", "times": "x"})
    assert bad["error"] == "DefinitionError" and "param 'times'" in bad["message"]
    unknown = child(db_url, "url-only", {"x": 1})
    assert unknown["error"] == "DefinitionError"
    assert counts(engine) == (1, 1)


def test_enqueue_without_a_database_says_so(tmp_path: Path) -> None:
    env = jobsys_env("", JOBSYS_APP=APP)
    env.pop("DATABASE_URL")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "url-only", json.dumps({"name": "x"})],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "error": "ConfigError",
        "message": "jobsys.enqueue: pass database_url= or connection=, or set DATABASE_URL",
    }
