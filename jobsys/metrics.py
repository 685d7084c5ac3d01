"""Prometheus metrics, computed from the database (``GET /metrics`` on the web).

Every figure is read from the database when scraped, so any web replica answers the same
and nothing is lost when a process restarts. Rendered in the text exposition format
0.0.4 by ``render`` (no client library needed at run time).

=====================================================  =========  ==========================
metric                                                 type       from
=====================================================  =========  ==========================
``jobsys_job_runs_total{job,status}``                  counter    finished runs (SUCCESS,
                                                                  FAILED, CANCELLED,
                                                                  SKIPPED) + ``pruned_count``
``jobsys_job_run_duration_seconds{job}``               histogram  ``job_run.duration_ms`` of
                                                                  runs finished in the last
                                                                  24 h (``WINDOW``)
``jobsys_firing_lateness_seconds{schedule}``           histogram  ``job_batch.lateness_ms``
                                                                  of CRON slots fired in the
                                                                  last 24 h
``jobsys_slots_skipped_total{schedule,reason}``        counter    SKIPPED batches (reason
                                                                  missed, overlap,
                                                                  superseded, other) +
                                                                  ``pruned_count``
``jobsys_job_runs_queued`` / ``_running``              gauge      runs in that status now
``jobsys_schedules_enabled``                           gauge      enabled schedules that can
                                                                  fire (in code, active here)
``jobsys_schedule_consecutive_failures{schedule}``     gauge      per enabled schedule
``jobsys_daemon_heartbeat_age_seconds{worker}``        gauge      daemons not STOPPED
``jobsys_daemons_alive``                               gauge      heartbeat within 5 min
``jobsys_health_status``                               gauge      0 OK, 1 WARNING,
                                                                  2 CRITICAL, 3 UNKNOWN (as
                                                                  ``jobsys health``)
``jobsys_alerts_firing{kind}``                         gauge      open alert incidents
``jobsys_database_up``                                 gauge      1 when the scrape could read
                                                                  the database, else 0
=====================================================  =========  ==========================

While the database cannot be reached, a scrape still answers (200) with what is known:
``jobsys_health_status 3`` (UNKNOWN, as ``jobsys health``) and ``jobsys_database_up 0``
(``unreachable_exposition``), so an alert on either fires instead of the scrape failing.

The two ``_total`` counters only grow: a run is counted once it has finished, and
retention adds what it deletes to ``pruned_count`` in the same transaction. The two
histograms describe a sliding 24-hour window, not all time: read them without
``rate()``, e.g. ``histogram_quantile(0.95, sum by (le) (jobsys_job_run_duration_seconds_bucket))``.

Cost: the counters are index-only counts (``ix_job_run_job_name_status``, and the
``status`` index of ``job_batch`` for the few SKIPPED rows), the histograms read the last
24 h through the ``updated_at`` indexes, the rest are small tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select, union_all
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys import health
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

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The histograms cover runs and slots of this recent period.
WINDOW = timedelta(hours=24)

#: Bucket bounds, in seconds.
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

FINISHED = (
    RunStatus.SUCCESS.value,
    RunStatus.FAILED.value,
    RunStatus.CANCELLED.value,
    RunStatus.SKIPPED.value,
)
HEALTH_VALUES = {health.OK: 0, health.WARNING: 1, health.CRITICAL: 2, health.UNKNOWN: 3}

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    suffix: str  # "" or "_bucket", "_sum", "_count"
    labels: Labels
    value: float


@dataclass
class Family:
    name: str
    kind: str  # counter, gauge, histogram
    help: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        self.samples.append(Sample(suffix, tuple(labels.items()), value))


# -- rendering -------------------------------------------------------------------------
def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The text exposition format 0.0.4: HELP, TYPE, then the samples of each family."""
    lines: list[str] = []
    for fam in families:
        lines.append(f"# HELP {fam.name} {_escape_help(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for s in fam.samples:
            name = fam.name + s.suffix
            if s.labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in s.labels)
                name = f"{name}{{{inner}}}"
            lines.append(f"{name} {format_value(s.value)}")
    return "\n".join(lines) + "\n"


def _histogram(
    fam: Family,
    bounds: Sequence[float],
    label: str,
    rows: Iterable[Any],
) -> None:
    """Rows are (label value, count, sum_ms, cumulative count per bound...)."""
    for row in rows:
        key, count, total_ms, *cumulative = row
        labels = {label: str(key)}
        for bound, n in zip(bounds, cumulative, strict=True):
            fam.add(int(n or 0), "_bucket", **labels, le=format_value(float(bound)))
        fam.add(int(count), "_bucket", **labels, le="+Inf")
        fam.add(float(total_ms or 0) / 1000, "_sum", **labels)
        fam.add(int(count), "_count", **labels)


def _bucket_sums(column: Any, bounds: Sequence[float]) -> list[ColumnElement[Any]]:
    return [
        func.sum(case((column <= round(b * 1000), 1), else_=0)).label(f"le{i}")
        for i, b in enumerate(bounds)
    ]


def _reason_class(column: Any) -> ColumnElement[str]:
    """SQL twin of ``retention.skip_reason``."""
    return case(
        *[(column.like(f"{name}%"), literal(name)) for name in SKIP_REASONS],
        else_=literal("other"),
    )


# -- collection ------------------------------------------------------------------------
def collect(
    engine: Engine, now: datetime, thresholds: health.Thresholds | None = None
) -> list[Family]:
    """Read every metric (a few indexed queries); raises on database errors."""
    since = now - WINDOW
    runs_total = Family(
        "jobsys_job_runs_total",
        "counter",
        "Finished job runs by job and final status (pruned history included).",
    )
    skipped_total = Family(
        "jobsys_slots_skipped_total",
        "counter",
        "Cron slots recorded as SKIPPED, by schedule and reason (missed, overlap, "
        "superseded, other; pruned history included).",
    )
    duration = Family(
        "jobsys_job_run_duration_seconds",
        "histogram",
        "Duration of the job runs that finished in the last 24 hours (a sliding window).",
    )
    lateness = Family(
        "jobsys_firing_lateness_seconds",
        "histogram",
        "How late cron slots fired, over the slots fired in the last 24 hours (a sliding window).",
    )
    queued = Family("jobsys_job_runs_queued", "gauge", "Job runs waiting to start.")
    running = Family("jobsys_job_runs_running", "gauge", "Job runs executing now.")
    enabled = Family(
        "jobsys_schedules_enabled",
        "gauge",
        "Enabled schedules that can fire (defined in code, active in this environment).",
    )
    failures = Family(
        "jobsys_schedule_consecutive_failures",
        "gauge",
        "Batches of an enabled schedule that failed in a row.",
    )
    heartbeat = Family(
        "jobsys_daemon_heartbeat_age_seconds",
        "gauge",
        "Seconds since each daemon that is not stopped last heartbeated.",
    )
    alive = Family(
        "jobsys_daemons_alive",
        "gauge",
        "Daemons that heartbeated within the critical age (5 minutes).",
    )
    alerts_firing = Family(
        "jobsys_alerts_firing", "gauge", "Open alert incidents by kind (see JOBSYS_ALERT_*)."
    )
    database_up = _database_up(1)

    report = health.evaluate(engine, now, thresholds)  # its own queries; UNKNOWN on failure
    health_status = _health_family(report.status)
    for w in report.workers:
        heartbeat.add(float(w["heartbeat_age_s"]), worker=str(w["id"]))
    alive.add(sum(1 for w in report.workers if w["alive"]))

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
    totals = union_all(*parts)
    with engine.connect() as conn:
        sums: dict[tuple[str, str, str], int] = {}
        for kind, a, b, n in conn.execute(totals):
            sums[(kind, a, b)] = sums.get((kind, a, b), 0) + int(n)
        durations = conn.execute(
            select(
                col(JobRun.job_name),
                func.count(),
                func.sum(col(JobRun.duration_ms)),
                *_bucket_sums(col(JobRun.duration_ms), DURATION_BUCKETS),
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
                *_bucket_sums(col(JobBatch.lateness_ms), LATENESS_BUCKETS),
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

    for (kind, a, b), n in sorted(sums.items()):
        if kind == "run":
            runs_total.add(n, job=a, status=b)
        else:
            skipped_total.add(n, schedule=a, reason=b)
    _histogram(duration, DURATION_BUCKETS, "job", durations)
    _histogram(lateness, LATENESS_BUCKETS, "schedule", late)
    queued.add(int(active.get(RunStatus.QUEUED.value, 0)))
    running.add(int(active.get(RunStatus.RUNNING.value, 0)))
    enabled.add(len(schedules))
    for sid, n in schedules:
        failures.add(int(n), schedule=sid)
    for kind in sorted(incidents):
        alerts_firing.add(int(incidents[kind]), kind=kind)

    return [
        runs_total,
        duration,
        lateness,
        skipped_total,
        queued,
        running,
        enabled,
        failures,
        heartbeat,
        alive,
        health_status,
        alerts_firing,
        database_up,
    ]


def _health_family(status: str) -> Family:
    fam = Family(
        "jobsys_health_status",
        "gauge",
        "Health as `jobsys health` judges it: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    fam.add(HEALTH_VALUES[status])
    return fam


def _database_up(value: int) -> Family:
    fam = Family(
        "jobsys_database_up", "gauge", "1 when this scrape could read the database, else 0."
    )
    fam.add(value)
    return fam


def exposition(engine: Engine, now: datetime) -> str:
    """What ``GET /metrics`` returns; raises on database errors (see
    ``unreachable_exposition``)."""
    return render(collect(engine, now))


def unreachable_exposition() -> str:
    """What ``GET /metrics`` returns while the database cannot be reached: all that is
    known is that health is UNKNOWN and the database is down."""
    return render([_health_family(health.UNKNOWN), _database_up(0)])
