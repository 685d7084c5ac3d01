"""Pure functions that shape what the API returns (no I/O): jobs with their activity,
batches with their run counts and timeline, the daemon status, SSE frames. The rows
themselves are formatted by ``jobsys.present``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jobsys import present
from jobsys.definitions import App
from jobsys.health import HealthReport
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
        (w.get("id"), w.get("status"), w.get("last_heartbeat_at"), w.get("alive"))
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
