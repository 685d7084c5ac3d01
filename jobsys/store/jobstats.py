"""What a job's page shows of its history: its newest runs, the durations of its
finished runs, and its finished runs per status since an instant (success rates).

Every query reads one job through an index on ``job_name`` (``(job_name, id)`` for the
newest runs, ``(job_name, finished_at, status)`` for the counts), so a job page stays
fast however many runs the table holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.clock import utc
from jobsys.store.models import JobDefinition, JobRun, RunStatus
from jobsys.store.rows import JobActivity, RunSummary, field_names

#: Runs in a job page's status strip, and finished runs in its durations chart.
RECENT_RUNS = 50
DURATION_RUNS = 200

_SUMMARY = field_names(RunSummary)


@dataclass(frozen=True)
class DurationPoint:
    run_id: int
    finished_at: datetime
    duration_ms: int
    status: str


@dataclass(frozen=True)
class JobHistory:
    recent: list[RunSummary]  # newest first
    durations: list[DurationPoint]  # oldest first
    #: finished runs per status since each of the instants asked for
    counts: dict[datetime, dict[str, int]]
    #: its newest run, the run holding its mutex, its queued and running runs
    activity: JobActivity


def job_history(
    engine: Engine,
    name: str,
    *,
    since: Sequence[datetime],
    recent: int = RECENT_RUNS,
    durations: int = DURATION_RUNS,
) -> JobHistory:
    by_job = col(JobRun.job_name) == name
    finished = (RunStatus.SUCCESS.value, RunStatus.FAILED.value)
    active = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
    # One connection for the whole page: what queries.job_activity reads for the jobs
    # list, for this job only (its newest run is the first of ``recent``).
    with engine.connect() as conn:
        rows = conn.execute(
            select(*(getattr(JobRun, k) for k in _SUMMARY))
            .where(by_job)
            .order_by(col(JobRun.id).desc())
            .limit(recent)
        ).all()
        holder = conn.execute(
            select(col(JobDefinition.running_run_id)).where(col(JobDefinition.name) == name)
        ).scalar()
        now_active = {
            str(status): int(n)
            for status, n in conn.execute(
                select(col(JobRun.status), func.count())
                .where(by_job, col(JobRun.status).in_(active))
                .group_by(col(JobRun.status))
            )
        }
        points = conn.execute(
            select(
                col(JobRun.id), col(JobRun.finished_at), col(JobRun.duration_ms), col(JobRun.status)
            )
            .where(
                by_job,
                col(JobRun.status).in_(finished),
                col(JobRun.duration_ms).is_not(None),
                col(JobRun.finished_at).is_not(None),
            )
            .order_by(col(JobRun.id).desc())
            .limit(durations)
        ).all()
        counts: dict[datetime, dict[str, int]] = {}
        # SQLite would walk every run of the job through (job_name, status) to group in
        # index order (30 ms for 4,000 runs); "+status" is not an indexed term, so it
        # reads the (job_name, finished_at, status) range instead (1 ms).
        by_status = (
            literal_column("+job_run.status")
            if conn.dialect.name == "sqlite"
            else col(JobRun.status)
        )
        for instant in since:
            counts[instant] = {
                status: int(n)
                for status, n in conn.execute(
                    select(col(JobRun.status), func.count())
                    .where(by_job, col(JobRun.finished_at) >= instant)
                    .group_by(by_status)
                )
            }
    summaries = [RunSummary(*r) for r in rows]
    return JobHistory(
        recent=summaries,
        durations=[
            DurationPoint(int(i), utc(at), int(ms), status)
            for i, at, ms, status in reversed(points)
            if i is not None
            and at is not None
            and ms is not None  # the query excludes them; for the types
        ],
        counts=counts,
        activity=JobActivity(
            summaries[0] if summaries else None,
            None if holder is None else int(holder),
            now_active,
        ),
    )
