"""Schedule upkeep the daemon does on its own (issue 10 items 4 and 8).

- pause on failure: a schedule with ``pause_on_failure = N`` whose last N batches
  failed (``consecutive_failures``) is disabled with a note saying so and an audit row;
  the alert ``schedule_paused`` (``jobsys.alerts``) tells the webhook;
- a lost next run: an enabled schedule whose ``next_run_at`` is NULL, not a slot of its
  cron, or beyond its next slot (set by hand in the database, or by a bug) would never
  fire (or fire off its cron); it gets the first slot after now again, logged and
  audited. ``health`` warns about such a schedule until then.

Each change is a conditional UPDATE, so several daemons doing this at once change a row
(and audit it) once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from jobsys.clock import iso_utc
from jobsys.errors import CronError
from jobsys.scheduler import ScheduleTiming, next_run_after, next_run_problem
from jobsys.store import audit
from jobsys.store.db import connect, database_errors
from jobsys.store.tables import JobSchedule, col

#: ``paused_by`` and the audit actor of a schedule the daemon paused itself.
AUTO_PAUSED_BY = "jobsys (pause_on_failure)"

_RUNNABLE = (
    col(JobSchedule.enabled).is_(True),
    col(JobSchedule.in_code).is_(True),
    col(JobSchedule.env_active).is_(True),
)


@dataclass(frozen=True)
class Paused:
    schedule_id: str
    failures: int
    note: str


def pause_failing(engine: Engine, *, now: datetime, worker_id: str) -> list[Paused]:
    """Disable every enabled schedule that failed its ``pause_on_failure`` batches in a
    row; returns those this call disabled."""
    due = (
        select(
            col(JobSchedule.id),
            col(JobSchedule.pause_on_failure),
            col(JobSchedule.consecutive_failures),
            col(JobSchedule.last_batch_id),
        )
        .where(*_RUNNABLE, col(JobSchedule.pause_on_failure).is_not(None))
        .where(col(JobSchedule.consecutive_failures) >= col(JobSchedule.pause_on_failure))
    )
    paused: list[Paused] = []
    with database_errors(engine, "cannot pause failing schedules in"):
        with engine.connect() as conn:
            rows = conn.execute(due).all()
        for sid, limit, failures, last_batch in rows:
            note = (
                f"paused by the daemon: {failures} failed batches in a row "
                f"(pause_on_failure={limit}); last batch #{last_batch}"
            )
            with connect(engine, write=True) as s:
                done = s.execute(
                    update(JobSchedule)
                    .where(
                        col(JobSchedule.id) == sid,
                        col(JobSchedule.enabled).is_(True),
                        col(JobSchedule.consecutive_failures) >= limit,
                    )
                    .values(
                        enabled=False,
                        next_run_at=None,
                        paused_note=note,
                        paused_by=AUTO_PAUSED_BY,
                        paused_at=now,
                        updated_at=now,
                    )
                )
                if done.rowcount != 1:
                    s.rollback()
                    continue
                audit.record(
                    s,
                    at=now,
                    actor=AUTO_PAUSED_BY,
                    action="schedule.disable",
                    target_type="schedule",
                    target_id=sid,
                    before={"enabled": True, "consecutive_failures": failures},
                    after={"enabled": False, "note": note},
                    detail=f"daemon {worker_id}",
                )
                s.commit()
            paused.append(Paused(sid, failures, note))
    return paused


@dataclass(frozen=True)
class Repaired:
    schedule_id: str
    problem: str
    next_run_at: datetime


#: Rows read per fetch while ``repair_next_runs`` streams the enabled schedules.
STREAM_ROWS = 500

#: What a schedule's row looked like (a hash of its cron, time zone and ``next_run_at``)
#: when its ``next_run_at`` was last found right.
Checked = dict[str, int]


def repair_next_runs(engine: Engine, *, now: datetime, checked: Checked) -> list[Repaired]:
    """Give every enabled schedule whose ``next_run_at`` is lost its next slot again.

    ``checked`` (kept by the caller between polls) remembers rows found right, so the
    cron is only consulted for rows whose cron, time zone or ``next_run_at`` changed
    since: a correct slot stays correct as time passes.

    The daemon calls this every poll over every enabled schedule, so the rows are
    streamed, not loaded at once: reading 10,000 rows into a list cost it ~3 MiB of
    peak memory per poll, which fragmentation then kept (issue 9 item 5).
    """
    query = select(
        col(JobSchedule.id),
        col(JobSchedule.cron),
        col(JobSchedule.timezone),
        col(JobSchedule.next_run_at),
    ).where(*_RUNNABLE)
    lost: list[tuple[str, datetime | None, datetime, str]] = []
    known = 0  # rows already in ``checked``: fewer than its size = some left
    with database_errors(engine, "cannot check schedules in"):
        with engine.connect() as conn:
            for sid, cron, tz, next_run_at in conn.execution_options(
                stream_results=True, max_row_buffer=STREAM_ROWS
            ).execute(query):
                # A hash, not the values: with 10,000 schedules the daemon keeps 10,000.
                state = hash((cron, tz, next_run_at))
                was = checked.get(sid)
                known += was is not None
                if was == state:
                    continue
                timing = ScheduleTiming(cron=cron, timezone=tz)
                try:
                    problem = next_run_problem(timing, next_run_at, now)
                    fixed = next_run_after(timing, now) if problem else None
                except CronError:
                    continue  # a cron the code never had: nothing sensible to repair to
                if problem is None or fixed is None:
                    if was is None:
                        known += 1  # counted as seen: it is in ``checked`` from now on
                    checked[sid] = state
                    continue
                lost.append((sid, next_run_at, fixed, problem))
        if known < len(checked):  # schedules no longer runnable: forget them
            with engine.connect() as conn:
                runnable = set(
                    conn.execute(select(col(JobSchedule.id)).where(*_RUNNABLE)).scalars()
                )
            for sid in set(checked) - runnable:
                del checked[sid]
        # Written once the read is over (a repair is rare: a row edited by hand or a bug).
        return [
            Repaired(sid, problem, fixed)
            for sid, was_at, fixed, problem in lost
            if _repair_one(engine, sid, was_at, fixed, problem, now)
        ]


def _repair_one(
    engine: Engine,
    sid: str,
    was: datetime | None,
    fixed: datetime,
    problem: str,
    now: datetime,
) -> bool:
    at = col(JobSchedule.next_run_at)
    where = [col(JobSchedule.id) == sid, *_RUNNABLE, at.is_(None) if was is None else at == was]
    with connect(engine, write=True) as s:
        done = s.execute(
            update(JobSchedule).where(*where).values(next_run_at=fixed, updated_at=now)
        )
        if done.rowcount != 1:
            s.rollback()  # changed meanwhile (fired, disabled, repaired by another daemon)
            return False
        audit.record(
            s,
            at=now,
            actor="jobsys",
            action="schedule.repair",
            target_type="schedule",
            target_id=sid,
            before={"next_run_at": iso_utc(was)},
            after={"next_run_at": iso_utc(fixed)},
            detail=problem,
        )
        s.commit()
    return True
