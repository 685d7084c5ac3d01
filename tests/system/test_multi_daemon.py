"""Three real daemons on one MariaDB database: every slot fires exactly once, none is
missed, no job runs twice at once, and a SIGKILLed daemon's runs are recovered."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from jobsys.cron import CronSchedule
from jobsys.loader import load_app
from jobsys.store.db import make_engine
from jobsys.store.models import JobBatch, JobRun, WorkerInstance
from jobsys.store.schedules import set_enabled
from tests.process_helpers import ROOT, daemon_process, wait_for

APP = str(ROOT / "tests" / "apps" / "many_schedules_app.py")
SLOTS = 3  # every schedule fires at least three times (its cron is "* * * * *")

pytestmark = [pytest.mark.long, pytest.mark.slow, pytest.mark.mysql]


@pytest.mark.parametrize("kill_one", [False, True], ids=["three-daemons", "one-killed"])
def test_three_daemons_fire_every_slot_exactly_once(
    mysql_url: str, tmp_path: Path, kill_one: bool
) -> None:
    app = load_app(APP)
    engine = make_engine(mysql_url)
    env = {
        "JOBSYS_APP": APP,
        "SCHEDULE_POLL_INTERVAL_MS": "2000",
        "LOCK_TIMEOUT_MS": "10000",
        "JOBSYS_CONCURRENCY": "4",
    }
    try:
        with ExitStack() as stack:
            daemons = [
                stack.enter_context(
                    daemon_process(mysql_url, tmp_path, engine, name=f"d{i}", **env)
                )
                for i in range(3)
            ]
            enabled_at = datetime.now(UTC)
            for sid in app.schedules:
                set_enabled(engine, app, "development", sid, True, now=enabled_at, actor="test")
            killed_worker = None
            if kill_one:
                # Kill the daemon that runs the 25-second job, while it runs.
                def long_runner() -> str | None:
                    with engine.connect() as conn:
                        return conn.execute(
                            select(col(JobRun.worker_id)).where(
                                col(JobRun.job_name) == "long_job", col(JobRun.status) == "RUNNING"
                            )
                        ).scalar()

                killed_worker = wait_for(long_runner, timeout=90, interval=0.2)
                with engine.connect() as conn:
                    pid = conn.execute(
                        select(col(WorkerInstance.pid)).where(
                            col(WorkerInstance.id) == killed_worker
                        )
                    ).scalar_one()
                victim = next(d for d in daemons if d.pid == pid)
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait(10)
            # Run until SLOTS slots have come due (and 3 s more, for the "2 s" below): two
            # to three minutes, by when enabled_at fell within its minute.
            last_slot = CronSchedule("* * * * *").next_n(enabled_at, SLOTS)[-1]
            time.sleep(max(0.0, (last_slot - datetime.now(UTC)).total_seconds() + 3))
            stopped_at = datetime.now(UTC)
            for sid in app.schedules:
                set_enabled(engine, app, "development", sid, False, now=stopped_at, actor="test")
            # let the last batches finish (the long job may still run for a while)
            wait_for(lambda: not _active(engine), timeout=60, interval=0.5)
            for d in daemons:
                if d.proc.poll() is None:
                    assert "Traceback" not in d.log(), d.log()

        with engine.connect() as conn:
            batches = conn.execute(
                select(
                    col(JobBatch.schedule_id),
                    col(JobBatch.scheduled_for),
                    col(JobBatch.status),
                    col(JobBatch.lateness_ms),
                )
            ).all()
            runs = conn.execute(
                select(
                    col(JobRun.job_name),
                    col(JobRun.status),
                    col(JobRun.started_at),
                    col(JobRun.finished_at),
                    col(JobRun.error),
                    col(JobRun.worker_id),
                )
            ).all()

        # 1. every slot that came due fired (or was recorded) exactly once
        by_schedule: dict[str, list[datetime]] = defaultdict(list)
        for b in batches:
            by_schedule[b.schedule_id].append(b.scheduled_for)
        for sid in app.schedules:
            slots = by_schedule[sid]
            assert len(slots) == len(set(slots)), f"{sid}: a slot has two batches"
            expected = []
            t = CronSchedule("* * * * *").next_after(enabled_at)
            while t <= stopped_at - timedelta(seconds=2):
                expected.append(t)
                t += timedelta(minutes=1)
            assert len(expected) >= SLOTS
            assert sorted(slots)[: len(expected)] == expected, f"{sid}: missing slots"
        fired = [b for b in batches if b.status != "SKIPPED"]
        assert fired, "nothing fired"
        late = sorted(b.lateness_ms for b in fired)
        print(
            f"\nbatches={len(batches)} fired={len(fired)} "
            f"lateness p50={late[len(late) // 2]}ms max={late[-1]}ms"
        )

        # 2. no job ran twice at the same time
        by_job: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
        for r in runs:
            if r.started_at is not None and r.finished_at is not None and r.status != "FAILED":
                by_job[r.job_name].append((r.started_at, r.finished_at))
        for job, spans in by_job.items():
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start >= end, f"{job} ran twice at once"

        # 3. with a daemon killed: its runs are FAILED "daemon lost"; the others went on
        if kill_one:
            lost = [r for r in runs if r.worker_id == killed_worker and r.status == "FAILED"]
            assert lost and all("daemon lost" in (r.error or "") for r in lost)
            assert not [r for r in runs if r.worker_id == killed_worker and r.status == "RUNNING"]
            workers_that_ran = {r.worker_id for r in runs if r.status == "SUCCESS"}
            assert len(workers_that_ran - {killed_worker}) >= 1
        else:
            assert all(r.status == "SUCCESS" for r in runs), {r.status for r in runs}
    finally:
        engine.dispose()


def _active(engine: object) -> bool:
    from sqlalchemy.engine import Engine

    assert isinstance(engine, Engine)
    with engine.connect() as conn:
        return bool(
            conn.execute(
                select(col(JobRun.id)).where(col(JobRun.status).in_(("QUEUED", "RUNNING")))
            ).first()
        )
