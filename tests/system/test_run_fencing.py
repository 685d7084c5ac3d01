"""A run never outlives its daemon's lease (issue 12 item 6), memory_limit and
job_run.pid (item 21): real child processes, real daemons."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.definitions import App
from jobsys.errors import DefinitionError
from jobsys.executor import Child, Executor, Outcome, RunSpec
from jobsys.forkserver import ForkServer
from jobsys.loader import load_app
from jobsys.manual import create_manual_batch
from jobsys.store.db import make_engine
from jobsys.store.models import JobRun, WorkerInstance
from jobsys.store.queries import get_run
from jobsys.store.workers import notify_daemons
from tests.process_helpers import ROOT, daemon_process, wait_for

APP = str(ROOT / "tests" / "apps" / "fencing_app.py")


def spec(job: str, run_id: int = 1, **extra: object) -> RunSpec:
    base: dict[str, object] = {
        "run_id": run_id,
        "batch_id": 1,
        "job_name": job,
        "params": {},
        "trigger": "MANUAL",
        "schedule_id": None,
        "scheduled_for": None,
        "database_url": "sqlite://",
        "timeout_s": None,
    }
    base.update(extra)
    return RunSpec(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["direct", "process", "pool"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """A fresh process per run forked here or by the fork server, and a warm worker."""
    app = load_app(APP)
    server = ForkServer.start(app) if request.param != "direct" else None
    isolation = "process" if request.param == "process" else "pool"
    ex = Executor(app, server=server, kill_grace_s=1.0, isolation=isolation, pool_size=1)
    try:
        yield ex
    finally:
        ex.close()


def wait_outcome(child: Child, limit_s: float = 20.0) -> Outcome:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        outcome = child.poll()
        if outcome is not None:
            child.close()
            return outcome
        time.sleep(0.01)
    child.close()
    raise AssertionError("the child did not end")


# -- keep-alive -------------------------------------------------------------------------
def test_a_run_stops_itself_when_the_daemon_stops_beating(executor: Executor) -> None:
    started = time.monotonic()
    child = executor.start(spec("pause", params={"seconds": 10.0}, keepalive_s=0.6))
    outcome = wait_outcome(child)
    took = time.monotonic() - started
    assert outcome.status == "FAILED"
    assert outcome.error is not None and outcome.error.startswith("daemon lost: no keep-alive")
    assert 0.5 <= took < 2.5, took


def test_a_run_lives_on_while_the_daemon_beats(executor: Executor) -> None:
    child = executor.start(spec("pause", params={"seconds": 1.5}, keepalive_s=0.4))
    deadline = time.monotonic() + 20
    outcome = None
    while outcome is None and time.monotonic() < deadline:
        executor.keepalive.beat()
        outcome = child.poll()
        time.sleep(0.05)
    child.close()
    assert outcome is not None and outcome.status == "SUCCESS", outcome


# -- memory_limit -----------------------------------------------------------------------
def test_memory_limit_ends_a_runaway_run_with_the_reason(executor: Executor) -> None:
    app = load_app(APP)
    limit = app.jobs["hog"].memory_limit
    child = executor.start(spec("hog", memory_limit=limit))
    outcome = wait_outcome(child)
    assert outcome.status == "FAILED"
    assert outcome.error is not None
    assert outcome.error.startswith("memory limit 64M exceeded: RSS "), outcome.error
    assert outcome.duration_ms < 5000


def test_memory_limit_leaves_a_modest_run_alone(executor: Executor) -> None:
    app = load_app(APP)
    child = executor.start(spec("modest", memory_limit=app.jobs["modest"].memory_limit))
    assert wait_outcome(child).status == "SUCCESS"


def test_the_next_run_succeeds_after_a_run_was_fenced_or_killed(executor: Executor) -> None:
    # In the pool, both take the worker down with them: a fresh one runs the next run.
    app = load_app(APP)
    child = executor.start(spec("pause", params={"seconds": 10.0}, keepalive_s=0.3))
    assert wait_outcome(child).status == "FAILED"
    executor.keepalive.beat()
    child = executor.start(spec("hog", run_id=2, memory_limit=app.jobs["hog"].memory_limit))
    assert wait_outcome(child).status == "FAILED"
    executor.keepalive.beat()
    child = executor.start(spec("pause", run_id=3, params={"seconds": 0.0}, keepalive_s=30.0))
    assert wait_outcome(child).status == "SUCCESS"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512M", 512 << 20), ("2G", 2 << 30), ("1.5G", 3 << 29), ("64k", 64 << 10), (1000, 1000)],
)
def test_memory_limit_parses_sizes(value: str | int, expected: int) -> None:
    app = App("t")

    @app.job(group="g", memory_limit=value)
    def job(ctx: object) -> None:
        pass

    assert app.jobs["job"].memory_limit == expected


@pytest.mark.parametrize("value", ["2 gigs", "-1G", "0", True, 1.5])
def test_memory_limit_rejects_bad_sizes_naming_the_job(value: object) -> None:
    app = App("t")
    with pytest.raises(DefinitionError, match=r"^job 'greedy': memory_limit: size "):
        app.job("greedy", group="g", memory_limit=value)(lambda ctx: None)  # type: ignore[arg-type]


# -- real daemons -----------------------------------------------------------------------
def queue(engine: Engine, job: str, **params: object) -> int:
    now = datetime.now(UTC)
    created = create_manual_batch(
        engine, load_app(APP), mode="JOB", job=job, params=params, now=now, actor="test"
    )
    notify_daemons(engine, now, timedelta(minutes=5))
    return created.run_ids[0]


def test_job_run_pid_is_the_process_running_the_job(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "writes.txt"
    with daemon_process(db_url, tmp_path, engine, JOBSYS_APP=APP):
        run_id = queue(engine, "writer", path=str(path), seconds=1.0)
        wait_for(lambda: get_run(engine, run_id)["status"] == "SUCCESS", 20)
    with engine.connect() as conn:
        pid = conn.execute(select(col(JobRun.pid)).where(col(JobRun.id) == run_id)).scalar_one()
    written = {int(line.split()[2]) for line in path.read_text().splitlines()}
    assert pid is not None and written == {pid}


LOCK_TIMEOUT_MS = 4000


@pytest.mark.slow
@pytest.mark.mysql
def test_a_stopped_daemons_run_never_overlaps_its_successor(mysql_url: str, tmp_path: Path) -> None:
    """SIGSTOP the daemon running a job: its run must end itself within about half the
    lock timeout, before the other daemon recovers the lease and starts the job's next
    run; the job's own records show the two runs never overlap."""
    engine = make_engine(mysql_url)
    path = tmp_path / "writes.txt"
    env = {
        "JOBSYS_APP": APP,
        "SCHEDULE_POLL_INTERVAL_MS": "1000",
        "LOCK_TIMEOUT_MS": str(LOCK_TIMEOUT_MS),
    }
    try:
        with ExitStack() as stack:
            daemons = [
                stack.enter_context(
                    daemon_process(mysql_url, tmp_path, engine, name=f"d{i}", **env)
                )
                for i in range(2)
            ]
            first = queue(engine, "writer", path=str(path), seconds=10.0)
            second = queue(engine, "writer", path=str(path), seconds=1.0)
            wait_for(lambda: get_run(engine, first)["status"] == "RUNNING", 20)
            wait_for(path.exists, 10)
            with engine.connect() as conn:
                holder = conn.execute(
                    select(col(WorkerInstance.pid))
                    .join(JobRun, col(JobRun.worker_id) == col(WorkerInstance.id))
                    .where(col(JobRun.id) == first)
                ).scalar_one()
            victim = next(d for d in daemons if d.pid == holder)
            time.sleep(0.5)
            stopped_at = time.time()
            os.kill(victim.pid, signal.SIGSTOP)
            try:
                wait_for(lambda: get_run(engine, second)["status"] == "SUCCESS", 30, 0.2)
            finally:
                os.kill(victim.pid, signal.SIGCONT)
            lost = get_run(engine, first)
    finally:
        engine.dispose()
    assert lost["status"] == "FAILED"
    assert "daemon lost" in str(lost["error"])
    spans: dict[int, tuple[float, float]] = {}
    for line in path.read_text().splitlines():
        run_id, at = int(line.split()[0]), float(line.split()[1])
        low, high = spans.get(run_id, (at, at))
        spans[run_id] = (min(low, at), max(high, at))
    assert set(spans) == {first, second}
    # The first run ended itself about half the lock timeout after its daemon went silent.
    assert spans[first][1] - stopped_at < LOCK_TIMEOUT_MS / 2000 + 1.0, spans[first][1] - stopped_at
    assert spans[first][1] < spans[second][0], spans
