"""Pure functions that shape what the API returns (no I/O): jobs with their activity,
batches with their run counts and timeline, the daemon status, SSE frames. The rows
themselves are formatted by ``jobsys.present``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jobsys import present
from jobsys.clock import iso_utc
from jobsys.definitions import App
from jobsys.health import HealthReport
from jobsys.ledger import Ledger, LedgerEntry, Upcoming, format_offset
from jobsys.store.jobstats import JobHistory
from jobsys.store.overview import OverdueRow, OverviewFigures
from jobsys.store.rows import BatchWithRuns, JobActivity, LogPage, RunRow
from jobsys.store.schedules import ScheduleView
from jobsys.vocabulary import MissedPolicy


def job_entry(
    app: App, name: str, activity: JobActivity, isolation: str = "pool"
) -> dict[str, Any]:
    """One job of the registry with its newest run and what is active now.
    ``isolation``: the application's (``JOBSYS_ISOLATION``), for a job without its own."""
    data = app.jobs[name].to_dict()
    data["isolation"] = app.jobs[name].isolation or isolation
    last = activity.last_run
    data["last_run"] = present.run_summary_json(last) if last is not None else None
    data["running_run_id"] = activity.running_run_id
    data["active"] = dict(activity.active)
    return data


def status_counts(runs: Sequence[RunRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    return counts


def _to_ms(at: datetime | None) -> datetime | None:
    """``at`` cut to the millisecond: the precision of the instants the API shows, so
    the bars add up with them."""
    return None if at is None else at.replace(microsecond=at.microsecond // 1000 * 1000)


def _ms(delta_s: float) -> int:
    return max(0, int(delta_s * 1000))


def batch_timeline(batch: BatchWithRuns) -> list[dict[str, Any]]:
    """Each run of a batch as a bar: offsets from the batch's creation, in ms.

    ``start_ms`` is when it started (None if it never did), ``end_ms`` when it finished
    (None while it runs), ``wait_ms`` how long it was queued before starting.
    """
    origin = _to_ms(batch.created_at)
    bars: list[dict[str, Any]] = []
    for run in batch.runs:
        queued, started, finished = (
            _to_ms(at) for at in (run.queued_at, run.started_at, run.finished_at)
        )

        def offset(at: datetime | None) -> int | None:
            if at is None or origin is None:
                return None
            return _ms((at - origin).total_seconds())

        bars.append(
            {
                "run_id": run.id,
                "job_name": run.job_name,
                "status": run.status,
                "attempt": run.attempt,
                "depends_on": run.depends_on,
                "start_ms": offset(started),
                "end_ms": offset(finished),
                "wait_ms": (
                    _ms((started - queued).total_seconds())
                    if started is not None and queued is not None
                    else None
                ),
                "duration_ms": run.duration_ms,
            }
        )
    return bars


def batch_view(batch: BatchWithRuns) -> dict[str, Any]:
    data = present.batch_json(batch)
    data["runs"] = [present.run_json(r) for r in batch.runs]
    data["counts"] = status_counts(batch.runs)
    data["timeline"] = batch_timeline(batch)
    return data


def daemon_status(report: HealthReport) -> dict[str, Any]:
    """``GET /api/admin/daemon/status``: ``health.evaluate``'s report, API-shaped."""
    data = report.to_dict()
    return {
        "daemon_running": report.daemon_running,
        "health": data["health"],
        "health_message": report.message,
        "status": report.status,
        "problems": report.problems,
        "newest_heartbeat_at": data["newest_heartbeat_at"],
        "overdue_schedules": report.overdue,
        "failing_schedules": report.failing,
        "lost_next_run_schedules": report.lost,
        "workers": report.workers,
    }


def daemon_fingerprint(status: Mapping[str, Any]) -> str:
    """What must change for a new ``daemon`` event (not the ages, which always do)."""
    workers = [
        (w.get("id"), w.get("status"), w.get("last_heartbeat_at"), w.get("alive"), w.get("health"))
        for w in status.get("workers", [])
    ]
    return json.dumps(
        [
            status.get("health"),
            status.get("daemon_running"),
            workers,
            status.get("overdue_schedules"),
            status.get("failing_schedules"),
            status.get("lost_next_run_schedules"),
        ],
        default=str,
    )


def sse_frame(event: str, data: Any) -> str:
    """One Server-Sent Event: ``event: <type>`` and one ``data:`` line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def sse_comment(text: str) -> str:
    return f": {text}\n\n"


def missed_policy_text(policy: str, grace_s: int, max_catch_up_s: int | None) -> str:
    """What happens to slots no daemon fired in time, in one sentence for the UI."""
    if policy == MissedPolicy.RUN_ONCE:
        window = f"{max_catch_up_s // 60} min" if max_catch_up_s else "the catch-up window"
        return (
            f"RUN_ONCE: if slots were missed (fired more than {grace_s} s late) within "
            f"{window}, the jobs run once as soon as a daemon is back, then the schedule "
            "continues."
        )
    return (
        f"SKIP: a slot not fired within {grace_s} s of its time (no daemon running) is "
        "skipped and recorded in the history, never run late."
    )


def schedule_entry(view: ScheduleView) -> dict[str, Any]:
    """A ``ScheduleView`` as the API returns it: its JSON, the reason it cannot run (if
    any) and the missed-run policy in words."""
    data = present.schedule_json(view)
    data["note"] = present.schedule_note(view)
    data["missed_policy_description"] = missed_policy_text(
        view.missed_policy, view.grace_s, view.max_catch_up_s
    )
    return data


def run_detail(run: RunRow, logs: LogPage) -> dict[str, Any]:
    """A run with its progress in percent and a page of its logs: ``log_count`` lines are
    stored, ``logs_earlier`` before the page and ``logs_later`` after it."""
    data = present.run_json(run)
    done, total = run.progress_done, run.progress_total
    data["progress_percent"] = (
        round(100 * min(max(done, 0), total) / total, 1)
        if isinstance(done, int) and isinstance(total, int) and total > 0
        else None
    )
    data["logs"] = [present.log_line_json(line) for line in logs.lines]
    data["log_count"] = logs.total
    data["logs_earlier"] = logs.earlier
    data["logs_later"] = logs.later
    return data


# -- a job's page, a schedule's next slots and slot ledger (issue 11) -------------------
def percentile(values: Sequence[int], p: float) -> int | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def success_rate(counts: Mapping[str, int]) -> dict[str, Any]:
    """Finished runs per status since an instant, and the share of them that succeeded
    (SUCCESS / (SUCCESS + FAILED); cancelled and skipped runs are not outcomes of the
    job's code). None when nothing finished."""
    ok, failed = counts.get("SUCCESS", 0), counts.get("FAILED", 0)
    return {
        "counts": dict(counts),
        "finished": sum(counts.values()),
        "succeeded": ok,
        "failed": failed,
        "rate": round(ok / (ok + failed), 4) if ok + failed else None,
    }


def job_page(
    app: App,
    name: str,
    activity: JobActivity,
    history: JobHistory,
    since: Mapping[str, datetime],
) -> dict[str, Any]:
    """``GET /jobs/{name}``: the job, its neighbours, its newest runs, the durations of
    its finished runs with p50/p95, and its success rate per window (``since``)."""
    data = job_entry(app, name, activity)
    data["upstream"] = list(app.jobs[name].depends_on)
    data["downstream"] = [n for n in app.ordered() if name in app.jobs[n].depends_on]
    data["recent_runs"] = [present.run_summary_json(r) for r in history.recent]
    durations = [p.duration_ms for p in history.durations]
    data["durations"] = [
        {
            "run_id": p.run_id,
            "finished_at": iso_utc(p.finished_at),
            "duration_ms": p.duration_ms,
            "status": p.status,
        }
        for p in history.durations
    ]
    data["duration_p50_ms"] = percentile(durations, 50)
    data["duration_p95_ms"] = percentile(durations, 95)
    data["success"] = {
        label: {"since": iso_utc(at), **success_rate(history.counts.get(at, {}))}
        for label, at in since.items()
    }
    return data


def ledger_entry_json(entry: LedgerEntry, zone: ZoneInfo) -> dict[str, Any]:
    local = entry.slot.astimezone(zone)
    return {
        "slot": iso_utc(entry.slot),
        "local": local.isoformat(timespec="minutes"),
        "fate": entry.fate.value,
        "cause": entry.cause.value if entry.cause is not None else None,
        "reason": entry.reason,
        "batch_id": entry.batch_id,
        "status": entry.status,
        "trigger": entry.trigger,
        "fired_at": iso_utc(entry.fired_at),
        "late_ms": entry.late_ms,
        "on_time": entry.on_time,
    }


def ledger_json(view: ScheduleView, built: Ledger) -> dict[str, Any]:
    zone = ZoneInfo(view.timezone)
    return {
        "schedule_id": view.id,
        "cron": view.cron,
        "timezone": view.timezone,
        "grace_s": view.grace_s,
        "from": iso_utc(built.start),
        "to": iso_utc(built.end),
        "now": iso_utc(built.now),
        "expected": len(built.entries),
        "counts": built.counts(),
        "causes": built.causes(),
        "slots": [ledger_entry_json(e, zone) for e in built.entries],
        "unmatched": [
            {
                "slot": iso_utc(r.slot),
                "batch_id": r.batch_id,
                "status": r.status,
                "trigger": r.trigger,
                "reason": r.reason,
            }
            for r in built.unmatched
        ],
    }


def upcoming_json(view: ScheduleView, slots: Sequence[Upcoming]) -> dict[str, Any]:
    return {
        "schedule_id": view.id,
        "cron": view.cron,
        "timezone": view.timezone,
        "slots": [
            {
                "at": iso_utc(s.slot),
                "local": s.local.isoformat(timespec="minutes"),
                "utc_offset": format_offset(s.offset_s),
                "dst_change": (
                    {"from": format_offset(s.dst_change[0]), "to": format_offset(s.dst_change[1])}
                    if s.dst_change is not None
                    else None
                ),
                "note": s.note,
            }
            for s in slots
        ],
    }


def _window(hourly: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of some hours: runs per outcome and the success rate (successes among
    successes and failures; null when there were none)."""
    sums = {k: sum(h[k] for h in hourly) for k in ("success", "failed", "cancelled", "skipped")}
    decided = sums["success"] + sums["failed"]
    return {
        "total": sum(sums.values()),
        **sums,
        "success_rate": round(sums["success"] / decided, 4) if decided else None,
    }


def overdue_reason(row: OverdueRow, report: HealthReport, now: datetime) -> str:
    """Why an enabled schedule's slot has not fired, as far as the database tells."""
    if not report.daemon_running:
        return "no daemon is running"
    if report.newest_heartbeat_at is not None:
        age = (now - report.newest_heartbeat_at).total_seconds()
        if age > 120:
            return f"the newest daemon heartbeat is {age:.0f} s old"
    if row.locked_by:
        return f"daemon {row.locked_by} is firing it"
    return f"not fired within its {row.grace_s} s grace; the daemon may be busy or asleep"


def overview(figures: OverviewFigures, report: HealthReport, now: datetime) -> dict[str, Any]:
    """``GET /api/admin/overview``: the landing page in one answer."""
    from datetime import timedelta

    from jobsys.clock import iso_utc

    top = now.replace(minute=0, second=0, microsecond=0)
    hours = [top - timedelta(hours=i) for i in range(7 * 24 - 1, -1, -1)]
    counts: dict[datetime, dict[str, int]] = {h: {} for h in hours}
    for c in figures.hourly:
        if c.hour in counts:
            counts[c.hour][c.status] = c.count
    hourly = [
        {
            "hour": iso_utc(h),
            "success": counts[h].get("SUCCESS", 0),
            "failed": counts[h].get("FAILED", 0),
            "cancelled": counts[h].get("CANCELLED", 0),
            "skipped": counts[h].get("SKIPPED", 0),
        }
        for h in hours
    ]
    overdue = []
    for sid in report.overdue:
        row = figures.schedules.get(sid)
        if row is None or row.next_run_at is None:
            continue
        overdue.append(
            {
                "id": row.id,
                "name": row.name,
                "next_run_at": iso_utc(row.next_run_at),
                "overdue_s": round((now - row.next_run_at).total_seconds()),
                "grace_s": row.grace_s,
                "reason": overdue_reason(row, report, now),
            }
        )
    return {
        "generated_at": iso_utc(now),
        "runs_now": {
            "queued": figures.active.get("QUEUED", 0),
            "running": figures.active.get("RUNNING", 0),
        },
        "windows": {"24h": _window(hourly[-24:]), "7d": _window(hourly)},
        "hourly": hourly,
        "failures": [
            {
                "id": f.id,
                "job_name": f.job_name,
                "batch_id": f.batch_id,
                "schedule_id": f.schedule_id,
                "trigger": f.trigger,
                "finished_at": iso_utc(f.finished_at),
                "error": f.error,
                "attempt": f.attempt,
                "retried_as": f.retried_as,
            }
            for f in figures.failures
        ],
        "overdue": overdue,
        "daemon": daemon_status(report),
    }
