"""The figures ``GET /metrics`` serves, read from the database at each scrape.

``jobsys.metrics`` names and describes the metrics; this module only counts. Cost: the
totals are index-only counts (``ix_job_run_job_name_status``, and the ``status`` index
of ``job_batch`` for the few SKIPPED rows), the histograms read the recent window through
the ``updated_at`` indexes, the rest are small tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select, union_all
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.store.models import (
    AlertIncident,
    JobBatch,
    JobRun,
    JobSchedule,
    PrunedCount,
    RunStatus,
    Trigger,
)
from jobsys.store.retention import SKIP_REASONS

FINISHED = (
    RunStatus.SUCCESS.value,
    RunStatus.FAILED.value,
    RunStatus.CANCELLED.value,
    RunStatus.SKIPPED.value,
)


@dataclass(frozen=True)
class RunTotal:
    """Finished runs of a job with a final status, pruned ones included."""

    job: str
    status: str
    count: int


@dataclass(frozen=True)
class SkippedTotal:
    """SKIPPED slots of a schedule by reason class, pruned ones included."""

    schedule: str
    reason: str  # missed, overlap, superseded or other
    count: int


@dataclass(frozen=True)
class Distribution:
    """A histogram's figures for one label value: how many, their sum in seconds, and
    how many were at most each bound (cumulative, one per bound)."""

    key: str
    count: int
    sum_s: float
    cumulative: tuple[int, ...]


@dataclass(frozen=True)
class ScheduleFailures:
    schedule: str
    consecutive_failures: int


@dataclass(frozen=True)
class MetricFigures:
    run_totals: list[RunTotal]  # by job, then status
    skipped_totals: list[SkippedTotal]  # by schedule, then reason
    durations: list[Distribution]  # by job
    lateness: list[Distribution]  # by schedule
    queued: int
    running: int
    runnable_schedules: list[ScheduleFailures]  # enabled, in code, active here; by id
    open_incidents: dict[str, int]  # by kind


def _bucket_sums(column: Any, bounds_s: Sequence[float]) -> list[ColumnElement[Any]]:
    return [
        func.sum(case((column <= round(b * 1000), 1), else_=0)).label(f"le{i}")
        for i, b in enumerate(bounds_s)
    ]


def _reason_class(column: Any) -> ColumnElement[str]:
    """SQL twin of ``retention.skip_reason``."""
    return case(
        *[(column.like(f"{name}%"), literal(name)) for name in SKIP_REASONS],
        else_=literal("other"),
    )


def _distributions(rows: Sequence[Any]) -> list[Distribution]:
    """Rows are (key, count, sum_ms, cumulative count per bound...)."""
    out = []
    for key, count, total_ms, *cumulative in rows:
        out.append(
            Distribution(
                key=str(key),
                count=int(count),
                sum_s=float(total_ms or 0) / 1000,
                cumulative=tuple(int(n or 0) for n in cumulative),
            )
        )
    return out


def read_metric_figures(
    engine: Engine,
    *,
    since: datetime,
    duration_bounds_s: Sequence[float],
    lateness_bounds_s: Sequence[float],
) -> MetricFigures:
    """Every figure but health (a few indexed queries, one connection); the histograms
    cover what finished or fired from ``since``. Raises on database errors."""
    # One statement, so live rows and pruned tallies come from one snapshot.
    parts: list[Any] = [
        select(
            literal("run").label("kind"),
            col(JobRun.job_name).label("a"),
            col(JobRun.status).label("b"),
            func.count().label("n"),
        )
        .where(col(JobRun.status).in_(FINISHED))
        .group_by(col(JobRun.job_name), col(JobRun.status)),
        select(
            literal("slot"),
            col(JobBatch.schedule_id),
            _reason_class(col(JobBatch.reason)),
            func.count(),
        )
        .where(col(JobBatch.status) == RunStatus.SKIPPED, col(JobBatch.schedule_id).is_not(None))
        .group_by(col(JobBatch.schedule_id), _reason_class(col(JobBatch.reason))),
        select(
            col(PrunedCount.kind),
            col(PrunedCount.label1),
            col(PrunedCount.label2),
            col(PrunedCount.count),
        ),
    ]
    with engine.connect() as conn:
        sums: dict[tuple[str, str, str], int] = {}
        for kind, a, b, n in conn.execute(union_all(*parts)):
            sums[(kind, a, b)] = sums.get((kind, a, b), 0) + int(n)
        durations = conn.execute(
            select(
                col(JobRun.job_name),
                func.count(),
                func.sum(col(JobRun.duration_ms)),
                *_bucket_sums(col(JobRun.duration_ms), duration_bounds_s),
            )
            .where(
                col(JobRun.updated_at) >= since,  # the index; finished runs are not updated
                col(JobRun.finished_at) >= since,
                col(JobRun.duration_ms).is_not(None),
            )
            .group_by(col(JobRun.job_name))
            .order_by(col(JobRun.job_name))
        ).all()
        late = conn.execute(
            select(
                col(JobBatch.schedule_id),
                func.count(),
                func.sum(col(JobBatch.lateness_ms)),
                *_bucket_sums(col(JobBatch.lateness_ms), lateness_bounds_s),
            )
            .where(
                col(JobBatch.updated_at) >= since,
                col(JobBatch.created_at) >= since,
                col(JobBatch.trigger) == Trigger.CRON,
                col(JobBatch.status) != RunStatus.SKIPPED,
                col(JobBatch.lateness_ms).is_not(None),
                col(JobBatch.schedule_id).is_not(None),
            )
            .group_by(col(JobBatch.schedule_id))
            .order_by(col(JobBatch.schedule_id))
        ).all()
        active = dict(
            conn.execute(
                select(col(JobRun.status), func.count())
                .where(col(JobRun.status).in_([RunStatus.QUEUED, RunStatus.RUNNING]))
                .group_by(col(JobRun.status))
            ).all()
        )
        schedules = conn.execute(
            select(col(JobSchedule.id), col(JobSchedule.consecutive_failures))
            .where(
                col(JobSchedule.enabled).is_(True),
                col(JobSchedule.in_code).is_(True),
                col(JobSchedule.env_active).is_(True),
            )
            .order_by(col(JobSchedule.id))
        ).all()
        incidents = dict(
            conn.execute(
                select(col(AlertIncident.kind), func.count())
                .where(col(AlertIncident.resolved_at).is_(None))
                .group_by(col(AlertIncident.kind))
            ).all()
        )

    ordered = sorted(sums.items())
    return MetricFigures(
        run_totals=[RunTotal(a, b, n) for (kind, a, b), n in ordered if kind == "run"],
        skipped_totals=[SkippedTotal(a, b, n) for (kind, a, b), n in ordered if kind == "slot"],
        durations=_distributions(durations),
        lateness=_distributions(late),
        queued=int(active.get(RunStatus.QUEUED.value, 0)),
        running=int(active.get(RunStatus.RUNNING.value, 0)),
        runnable_schedules=[ScheduleFailures(sid, int(n)) for sid, n in schedules],
        open_incidents={kind: int(incidents[kind]) for kind in sorted(incidents)},
    )
