"""Retention (jobsys.store.retention): what is pruned and what always stays, on SQLite and
MariaDB; pruning in budgeted steps and by two daemons at once; and, on MariaDB, a real
daemon pruning 200,000 old runs while a schedule keeps firing on time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import col

from jobsys import metrics
from jobsys.store.models import (
    AlertIncident,
    AuditLog,
    JobBatch,
    JobLog,
    JobRun,
    JobSchedule,
    PrunedCount,
    WorkerInstance,
)
from jobsys.store.retention import Pruner, prune, skip_reason
from jobsys.store.schedules import sync_definitions
from tests.daemon_helpers import make_app

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=100)
RECENT = NOW - timedelta(days=1)


def app_with_schedules() -> Any:
    def build(a: Any) -> None:
        a.schedule("busy", cron="0 * * * *", mode="GROUP", group="g")
        a.schedule("rare", cron="0 0 1 1 *", mode="GROUP", group="g")

    return make_app(build)


def new_id(result: CursorResult[Any]) -> int:
    """The primary key an ``INSERT`` of one row created."""
    key = result.inserted_primary_key
    assert key is not None
    created: int = key[0]
    return created


def add_batch(
    engine: Engine,
    at: datetime,
    runs: Sequence[tuple[str, str]] = (("quick", "SUCCESS"),),
    *,
    schedule_id: str | None = None,
    status: str | None = None,
    reason: str | None = None,
    logs: int = 2,
    trigger: str = "CRON",
) -> tuple[int, list[int]]:
    """A batch created at ``at`` whose runs finished a minute later, with log lines."""
    done = at + timedelta(minutes=1)
    active = any(s in ("QUEUED", "RUNNING") for _, s in runs)
    with engine.begin() as conn:
        batch_id = new_id(
            conn.execute(
                insert(JobBatch).values(
                    schedule_id=schedule_id,
                    trigger=trigger,
                    scheduled_for=at if trigger == "CRON" else None,
                    status=status or ("RUNNING" if active else "SUCCESS"),
                    reason=reason,
                    mode="GROUP",
                    total_runs=len(runs),
                    lateness_ms=5,
                    created_at=at,
                    finished_at=None if active else done,
                    updated_at=done,
                )
            )
        )
        run_ids = []
        for position, (job, state) in enumerate(runs):
            finished = state not in ("QUEUED", "RUNNING")
            run_id = new_id(
                conn.execute(
                    insert(JobRun).values(
                        batch_id=batch_id,
                        job_name=job,
                        status=state,
                        trigger=trigger,
                        schedule_id=schedule_id,
                        depends_on=[],
                        position=position,
                        queued_at=at,
                        started_at=at,
                        finished_at=done if finished else None,
                        duration_ms=60_000 if finished else None,
                        cancel_requested=False,
                        updated_at=done,
                    )
                )
            )
            run_ids.append(run_id)
            if logs:
                conn.execute(
                    insert(JobLog),
                    [
                        {"run_id": run_id, "ts": at, "level": "INFO", "message": f"line {i}"}
                        for i in range(logs)
                    ],
                )
        if schedule_id is not None and trigger == "CRON" and status != "SKIPPED":
            conn.execute(
                update(JobSchedule)
                .where(col(JobSchedule.id) == schedule_id)
                .values(last_batch_id=batch_id)
            )
    return batch_id, run_ids


def count(engine: Engine, model: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def ids(engine: Engine, column: Any) -> set[Any]:
    with engine.connect() as conn:
        return {v for (v,) in conn.execute(select(column))}


def totals(engine: Engine) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The /metrics counters (runs by job and status, skipped slots)."""
    out = {}
    for fam in metrics.collect(engine, NOW):
        if fam.name in ("jobsys_job_runs_total", "jobsys_slots_skipped_total"):
            for s in fam.samples:
                out[(fam.name, s.labels)] = s.value
    return out


@dataclass
class World:
    kept_runs: set[int]
    gone_runs: set[int]
    kept_batches: set[int]
    gone_batches: set[int]


def build_world(engine: Engine) -> World:
    app = app_with_schedules()
    sync_definitions(engine, app, "development", OLD - timedelta(days=1))
    w = World(set(), set(), set(), set())

    def old(batch: tuple[int, list[int]]) -> None:
        w.gone_batches.add(batch[0])
        w.gone_runs.update(batch[1])

    def kept(batch: tuple[int, list[int]]) -> None:
        w.kept_batches.add(batch[0])
        w.kept_runs.update(batch[1])

    # "busy" fired for a long time: old batches go, the recent ones stay
    for day in range(3):
        old(
            add_batch(
                engine,
                OLD - timedelta(days=day),
                (("quick", "SUCCESS"), ("after_quick", "FAILED")),
                schedule_id="busy",
            )
        )
    for minutes, reason in ((1, "missed: x"), (2, "overlap: y")):
        old(
            add_batch(
                engine,
                OLD + timedelta(minutes=minutes),
                (),
                schedule_id="busy",
                status="SKIPPED",
                reason=reason,
            )
        )
    # a run queued long ago but finished recently stays (by finished_at)
    b, r = add_batch(engine, OLD, (("slow", "SUCCESS"),), trigger="MANUAL")
    with engine.begin() as conn:
        conn.execute(update(JobRun).where(col(JobRun.id) == r[0]).values(finished_at=RECENT))
        conn.execute(update(JobBatch).where(col(JobBatch.id) == b).values(finished_at=RECENT))
    kept((b, r))
    # an old run that is still RUNNING (and so its batch) stays
    kept(add_batch(engine, OLD, (("slow", "RUNNING"),), trigger="MANUAL"))
    # "rare" last fired long ago: its last batch and runs stay; an older one goes
    old(add_batch(engine, OLD - timedelta(days=400), schedule_id="rare"))
    kept(add_batch(engine, OLD - timedelta(days=30), schedule_id="rare"))
    # "boom" ran only once, long ago: that run is the job's last, so it (and its batch) stay
    kept(add_batch(engine, OLD, (("boom", "FAILED"),), trigger="MANUAL"))
    # recent history stays
    for hours in (1, 30):
        kept(
            add_batch(
                engine,
                NOW - timedelta(hours=hours),
                (("quick", "SUCCESS"), ("after_quick", "SUCCESS")),
                schedule_id="busy",
            )
        )
    kept(add_batch(engine, RECENT, (), schedule_id="busy", status="SKIPPED", reason="missed: z"))

    with engine.begin() as conn:
        for days, action in ((400, "old.audit"), (100, "kept.audit")):
            conn.execute(insert(AuditLog).values(at=NOW - timedelta(days=days), action=action))
        for wid, status, seen in (
            ("gone-worker", "STOPPED", OLD),
            ("recent-stopped", "STOPPED", RECENT),
            ("old-but-running", "RUNNING", OLD),
        ):
            conn.execute(
                insert(WorkerInstance).values(
                    id=wid,
                    hostname="h",
                    pid=1,
                    status=status,
                    started_at=seen,
                    last_heartbeat_at=seen,
                    version="t",
                    concurrency=1,
                )
            )
        for subject, resolved in (("old", OLD), ("recent", RECENT), ("open", None)):
            conn.execute(
                insert(AlertIncident).values(
                    kind="schedule_failing",
                    subject=subject,
                    dedupe_key=None if resolved else "open",
                    message="m",
                    since=OLD - timedelta(days=1),
                    resolved_at=resolved,
                    attempts=0,
                    updated_at=OLD,
                )
            )
    return w


def test_prune_removes_old_history_and_keeps_what_must_stay(engine: Engine) -> None:
    w = build_world(engine)
    before = totals(engine)
    logs_before = count(engine, JobLog)

    report = prune(engine, NOW, history_days=90, audit_days=365)

    assert ids(engine, col(JobRun.id)) == w.kept_runs
    assert ids(engine, col(JobBatch.id)) == w.kept_batches
    assert report.runs == len(w.gone_runs) == 7
    assert report.batches == len(w.gone_batches) == 6
    assert report.logs == 2 * len(w.gone_runs)
    assert count(engine, JobLog) == logs_before - report.logs
    with engine.connect() as conn:
        kept_log_runs = {r for (r,) in conn.execute(select(col(JobLog.run_id)).distinct())}
    assert kept_log_runs == w.kept_runs
    assert ids(engine, col(AuditLog.action)) == {"kept.audit"}
    assert ids(engine, col(WorkerInstance.id)) == {"recent-stopped", "old-but-running"}
    assert ids(engine, col(AlertIncident.subject)) == {"recent", "open"}
    assert (report.audit, report.workers, report.incidents) == (1, 1, 1)
    # the /metrics totals do not move: what was deleted is tallied
    assert totals(engine) == before
    with engine.connect() as conn:
        tally = {
            (k, a, b): n
            for k, a, b, n in conn.execute(
                select(
                    col(PrunedCount.kind),
                    col(PrunedCount.label1),
                    col(PrunedCount.label2),
                    col(PrunedCount.count),
                )
            )
        }
    assert tally == {
        ("run", "quick", "SUCCESS"): 4,
        ("run", "after_quick", "FAILED"): 3,
        ("slot", "busy", "missed"): 1,
        ("slot", "busy", "overlap"): 1,
    }
    # a second pass finds nothing
    again = prune(engine, NOW, history_days=90, audit_days=365)
    assert again.total == 0 and again.done
    assert totals(engine) == before


def test_zero_days_keeps_everything(engine: Engine) -> None:
    build_world(engine)
    pruner = Pruner(engine, history_days=0, audit_days=0)
    assert not pruner.enabled
    pruner.start(NOW)
    assert not pruner.active
    runs = count(engine, JobRun)
    assert prune(engine, NOW, history_days=0).total == 0
    assert count(engine, JobRun) == runs


def test_audit_only(engine: Engine) -> None:
    w = build_world(engine)
    report = prune(engine, NOW, history_days=0, audit_days=365)
    assert (report.audit, report.runs, report.workers, report.incidents) == (1, 0, 0, 0)
    assert w.gone_runs <= ids(engine, col(JobRun.id))
    assert "gone-worker" in ids(engine, col(WorkerInstance.id))
    assert "old" in ids(engine, col(AlertIncident.subject))


def test_pruning_in_budgeted_steps(engine: Engine) -> None:
    sync_definitions(engine, app_with_schedules(), "development", OLD)
    for i in range(30):
        add_batch(engine, OLD - timedelta(minutes=i), (("quick", "SUCCESS"),), logs=3)
    add_batch(engine, NOW, (("quick", "SUCCESS"),))  # the job's last run: recent
    pruner = Pruner(engine, history_days=90, chunk=8)
    pruner.start(NOW)
    steps = 0
    while pruner.active:
        report = pruner.step(0.0)  # a zero budget: one chunk per step
        assert report.runs <= 8 and report.batches <= 8
        steps += 1
        assert steps < 50
    assert steps >= 30 // 8 * 2  # runs, then batches, each chunk by chunk
    assert pruner.last_pass.runs == 30 and pruner.last_pass.batches == 30
    assert pruner.last_pass.logs == 90
    assert count(engine, JobRun) == 1


def test_two_pruners_at_once_tally_each_row_once(engine: Engine) -> None:
    sync_definitions(engine, app_with_schedules(), "development", OLD)
    for i in range(40):
        add_batch(
            engine,
            OLD - timedelta(minutes=i),
            (("quick", "SUCCESS"), ("after_quick", "SKIPPED")),
            logs=1,
        )
    add_batch(engine, NOW, (("quick", "SUCCESS"), ("after_quick", "SUCCESS")))
    a = Pruner(engine, history_days=90, chunk=7)
    b = Pruner(engine, history_days=90, chunk=5)
    a.start(NOW)
    b.start(NOW)
    while a.active or b.active:
        for p in (a, b):
            if p.active:
                p.step(0.0)
    assert a.last_pass.runs + b.last_pass.runs == 80
    with engine.connect() as conn:
        tallied = conn.execute(select(func.sum(col(PrunedCount.count)))).scalar()
    assert tallied == 80
    assert count(engine, JobRun) == 2


def test_skip_reason_classes() -> None:
    assert skip_reason("missed: not fired within its grace (policy SKIP)") == "missed"
    assert skip_reason("overlap: batch #3 of this schedule is still running") == "overlap"
    assert skip_reason("superseded: a later slot is due now") == "superseded"
    assert skip_reason(None) == "other" and skip_reason("?") == "other"


# -- a real daemon prunes a large backlog while a schedule fires --------------------------
BIG_RUNS = 200_000
RUNS_PER_BATCH = 10


def _bulk_history(engine: Engine, at: datetime) -> None:
    """BIG_RUNS finished runs in batches of RUNS_PER_BATCH, one log line per 10 runs, all
    finished around ``at``; inserted with executemany in chunks."""
    batches = BIG_RUNS // RUNS_PER_BATCH
    with engine.begin() as conn:
        first = conn.execute(select(func.coalesce(func.max(col(JobBatch.id)), 0))).scalar_one()
    assert first is not None
    step = 2000
    for start in range(0, batches, step):
        chunk = range(start, min(batches, start + step))
        batch_rows = [
            {
                "id": first + 1 + i,
                "schedule_id": None,
                "trigger": "MANUAL",
                "status": "SUCCESS",
                "mode": "ALL_JOBS",
                "skip_dependencies": False,
                "total_runs": RUNS_PER_BATCH,
                "created_at": at + timedelta(seconds=i),
                "finished_at": at + timedelta(seconds=i + 1),
                "updated_at": at + timedelta(seconds=i + 1),
            }
            for i in chunk
        ]
        run_rows: list[dict[str, Any]] = [
            {
                "batch_id": first + 1 + i,
                "job_name": f"old_job_{j}",
                "status": "SUCCESS" if j else "FAILED",
                "trigger": "MANUAL",
                "depends_on": [],
                "position": j,
                "queued_at": at + timedelta(seconds=i),
                "started_at": at + timedelta(seconds=i),
                "finished_at": at + timedelta(seconds=i + 1),
                "duration_ms": 1000,
                "cancel_requested": False,
                "updated_at": at + timedelta(seconds=i + 1),
            }
            for i in chunk
            for j in range(RUNS_PER_BATCH)
        ]
        with engine.begin() as conn:
            conn.execute(insert(JobBatch), batch_rows)
            conn.execute(insert(JobRun), run_rows)
            low, high = conn.execute(
                select(func.min(col(JobRun.id)), func.max(col(JobRun.id))).where(
                    col(JobRun.batch_id).between(first + 1 + chunk[0], first + 1 + chunk[-1])
                )
            ).one()
            assert low is not None and high is not None
            conn.execute(
                insert(JobLog),
                [
                    {"run_id": rid, "ts": at, "level": "INFO", "message": "old line"}
                    for rid in range(low, high + 1, 10)
                ],
            )


@pytest.mark.long
@pytest.mark.mysql
def test_daemon_prunes_a_large_backlog_while_firing_on_time(mysql_url: str, tmp_path: Path) -> None:
    from jobsys.store.db import make_engine
    from jobsys.store.schedules import set_enabled
    from tests.process_helpers import ROOT, daemon_process, wait_for

    app_path = str(ROOT / "tests" / "apps" / "ops_app.py")
    from jobsys.loader import load_app

    app = load_app(app_path)
    engine = make_engine(mysql_url)
    try:
        real_now = datetime.now(UTC)
        sync_definitions(engine, app, "development", real_now)
        t0 = time.monotonic()
        _bulk_history(engine, real_now - timedelta(days=200))
        inserted_s = time.monotonic() - t0
        old_logs = count(engine, JobLog)
        collect_ms = 0.0
        for _ in range(3):
            t = time.monotonic()
            metrics.collect(engine, real_now)
            collect_ms = max(collect_ms, (time.monotonic() - t) * 1000)
        print(
            f"\ninserted {BIG_RUNS} runs, {BIG_RUNS // RUNS_PER_BATCH} batches and "
            f"{old_logs} log lines in {inserted_s:.1f}s; /metrics collect with them: "
            f"{collect_ms:.0f} ms"
        )
        # Start the daemon a few seconds before a minute boundary, so that the slot of
        # the every-minute schedule comes due while the backlog is being pruned.
        wait_for(lambda: 50 <= datetime.now(UTC).second < 53, timeout=70, interval=0.1)
        set_enabled(
            engine, app, "development", "every-minute", True, now=datetime.now(UTC), actor="t"
        )
        with daemon_process(
            mysql_url,
            tmp_path,
            engine,
            JOBSYS_APP=app_path,
            JOBSYS_LOG_LEVEL="INFO",
            SCHEDULE_POLL_INTERVAL_MS="1000",
        ) as daemon:
            began = time.monotonic()
            seen_during: list[tuple[int, int]] = []  # (lateness ms, runs still to prune)

            def progress() -> bool:
                left = count(engine, JobRun, col(JobRun.job_name).like("old_job_%"))
                with engine.connect() as conn:
                    fired = conn.execute(
                        select(col(JobBatch.lateness_ms))
                        .where(
                            col(JobBatch.schedule_id) == "every-minute",
                            col(JobBatch.trigger) == "CRON",
                            col(JobBatch.status) != "SKIPPED",
                        )
                        .order_by(col(JobBatch.id))
                    ).all()
                for (late,) in fired[len(seen_during) :]:
                    assert late is not None
                    seen_during.append((int(late), left))
                manual = count(engine, JobBatch, col(JobBatch.trigger) == "MANUAL")
                return left == 0 and manual == 0

            wait_for(progress, timeout=150, interval=0.25)
            pruned_s = time.monotonic() - began
            wait_for(lambda: "retention: deleted" in daemon.log(), timeout=30)
            log = daemon.log()
        assert count(engine, JobLog, col(JobLog.message) == "old line") == 0
        rate = (BIG_RUNS + BIG_RUNS // RUNS_PER_BATCH + old_logs) / pruned_s
        print(
            f"daemon pruned {BIG_RUNS} runs + {BIG_RUNS // RUNS_PER_BATCH} batches + "
            f"{old_logs} log lines in {pruned_s:.1f}s ({BIG_RUNS / pruned_s:.0f} runs/s, "
            f"{rate:.0f} rows/s in all); slots fired (lateness ms, old runs left then): "
            f"{seen_during}"
        )
        assert "retention: deleted 200000 run(s)" in log, log[-3000:]
        assert seen_during, "no slot fired"
        during = [late for late, left in seen_during if left > 0]
        assert during, f"no slot fired while pruning: {seen_during}"
        assert max(late for late, _ in seen_during) < 1000
        # the counters kept every pruned run
        fams = {f.name: f for f in metrics.collect(engine, datetime.now(UTC))}
        old_total = sum(
            s.value
            for s in fams["jobsys_job_runs_total"].samples
            if dict(s.labels)["job"].startswith("old_job_")
        )
        assert old_total == BIG_RUNS
    finally:
        engine.dispose()
