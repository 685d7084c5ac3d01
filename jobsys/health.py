"""Health of the scheduling system (design 6.9), shared by ``jobsys health`` and the web.

CRITICAL: no daemon heartbeat within ``max_age`` (default 5 min), or no daemon running
(the message says when the last one stopped, and whether cleanly).
WARNING: the newest heartbeat is older than ``warn_age`` (2 min), an enabled schedule is
overdue beyond its grace, or a schedule failed its last ``failures`` batches (3; batches
of a schedule only, cron or Run Now: a manual run of one job belongs to no schedule), or
an enabled schedule's next run is lost (``next_run_at`` NULL, off its cron or past its
next slot: it would never fire; a daemon repairs it on its next poll).
OK otherwise. UNKNOWN: the database cannot be reached (or is not migrated), or the
configuration is bad (the CLI reports that).
Exit codes follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from jobsys.clock import iso_utc
from jobsys.store.workers import live_window

if TYPE_CHECKING:
    from jobsys.store.health import RunnableSchedule, StoppedWorker

OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
EXIT_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}
API_NAMES = {OK: "healthy", WARNING: "warning", CRITICAL: "critical", UNKNOWN: "unknown"}


@dataclass(frozen=True)
class Thresholds:
    max_age_s: float = live_window().total_seconds()  # beyond it a daemon is not alive
    warn_age_s: float = 120
    failures: int = 3


@dataclass
class HealthReport:
    status: str
    message: str
    problems: list[str] = field(default_factory=list)
    newest_heartbeat_at: datetime | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # schedules whose next run is lost

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def daemon_running(self) -> bool:
        return any(w["status"] == "RUNNING" and w["alive"] for w in self.workers)

    def line(self) -> str:
        return f"JOBSYS {self.status} - {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "health": API_NAMES[self.status],
            "message": self.message,
            "problems": self.problems,
            "daemon_running": self.daemon_running,
            "newest_heartbeat_at": iso_utc(self.newest_heartbeat_at),
            "overdue_schedules": self.overdue,
            "failing_schedules": self.failing,
            "lost_next_run_schedules": self.lost,
            "workers": self.workers,
        }


def evaluate(engine: Engine, now: datetime, thresholds: Thresholds | None = None) -> HealthReport:
    """Read heartbeats and schedules and judge; UNKNOWN if the database fails."""
    from jobsys.errors import JobsysError
    from jobsys.store.db import database_errors
    from jobsys.store.health import read_health
    from jobsys.store.migrate import ensure_current

    t = thresholds or Thresholds()
    try:
        with database_errors(engine, "cannot reach database"):
            ensure_current(engine)
            figures = read_health(engine)
    except JobsysError as exc:
        return HealthReport(UNKNOWN, str(exc), [str(exc)])

    worker_rows, schedules = figures.workers, figures.schedules
    last_stopped = figures.last_stopped
    workers = [
        {
            "id": w.id,
            "hostname": w.hostname,
            "pid": w.pid,
            "status": w.status,
            "started_at": iso_utc(w.started_at),
            "last_heartbeat_at": iso_utc(w.last_heartbeat_at),
            "heartbeat_age_s": round((now - w.last_heartbeat_at).total_seconds(), 1),
            "alive": (now - w.last_heartbeat_at).total_seconds() <= t.max_age_s,
            "health": _worker_health((now - w.last_heartbeat_at).total_seconds(), t),
        }
        for w in worker_rows
    ]
    newest = max((w.last_heartbeat_at for w in worker_rows), default=None)
    overdue = [
        s.id
        for s in schedules
        if s.next_run_at is not None and now - s.next_run_at > timedelta(seconds=s.grace_s)
    ]
    failing = [s.id for s in schedules if s.consecutive_failures >= t.failures]
    lost = _lost_next_runs(schedules, now)
    report = HealthReport(
        OK,
        "",
        newest_heartbeat_at=newest,
        workers=workers,
        overdue=overdue,
        failing=failing,
        lost=[sid for sid, _ in lost],
    )

    if newest is None:
        report.problems.append(_none_running(last_stopped))
        report.status = CRITICAL
    else:
        age = (now - newest).total_seconds()
        if age > t.max_age_s:
            report.problems.append(
                f"no daemon heartbeat for {age:.0f}s (critical after {t.max_age_s:.0f}s)"
            )
            report.status = CRITICAL
        elif age > t.warn_age_s:
            report.problems.append(
                f"newest daemon heartbeat is {age:.0f}s old (warning after {t.warn_age_s:.0f}s)"
            )
            report.status = WARNING
    if overdue:
        report.problems.append(f"{len(overdue)} schedule(s) overdue: {', '.join(overdue[:5])}")
    if failing:
        report.problems.append(
            f"{len(failing)} schedule(s) failed their last {t.failures} runs: "
            f"{', '.join(failing[:5])}"
        )
    if lost:
        report.problems.append(
            f"{len(lost)} schedule(s) will not fire (a daemon repairs this on its next poll): "
            + "; ".join(f"{sid}: {why}" for sid, why in lost[:5])
        )
    if (overdue or failing or lost) and report.status == OK:
        report.status = WARNING
    alive = sum(1 for w in workers if w["alive"])
    report.message = (
        "; ".join(report.problems)
        if report.problems
        else (
            f"{alive} daemon(s) alive, newest heartbeat {(now - newest).total_seconds():.0f}s ago, "
            f"{len(schedules)} schedule(s) enabled"
            if newest is not None
            else "ok"
        )
    )
    return report


def _worker_health(age_s: float, t: Thresholds) -> str:
    """One daemon's heartbeat judged by the thresholds of the whole (API names)."""
    if age_s > t.max_age_s:
        return API_NAMES[CRITICAL]
    if age_s > t.warn_age_s:
        return API_NAMES[WARNING]
    return API_NAMES[OK]


def _lost_next_runs(schedules: list[RunnableSchedule], now: datetime) -> list[tuple[str, str]]:
    """Enabled schedules whose ``next_run_at`` is lost, each with what is wrong."""
    from jobsys.errors import CronError
    from jobsys.scheduler import ScheduleTiming, next_run_problem

    lost: list[tuple[str, str]] = []
    for s in schedules:
        try:
            why = next_run_problem(ScheduleTiming(s.cron, s.timezone), s.next_run_at, now)
        except CronError as exc:
            why = str(exc)
        if why:
            lost.append((s.id, why))
    return lost


def _none_running(last: StoppedWorker | None) -> str:
    """Why no daemon runs, from the newest STOPPED instance (None: none is recorded)."""
    if last is None:
        return "no daemon is running (none has run, or its record was deleted)"
    who = f"{last.hostname} pid {last.pid}"
    if last.stopped_at is not None and last.stopped_at == last.last_heartbeat_at:
        # A daemon that shuts down cleanly writes both in one update (workers.set_status).
        return (
            f"no daemon running since {iso_utc(last.stopped_at)} "
            f"(the last one, {who}, stopped cleanly)"
        )
    return (
        f"no daemon running since {iso_utc(last.last_heartbeat_at)}, its last heartbeat "
        f"(the last one, {who}, stopped heartbeating and was declared dead)"
    )
