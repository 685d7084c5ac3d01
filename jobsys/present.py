"""The store's rows as JSON and as text for people: the one place that formats them.

The web API (``jobsys.web.views``) and the CLI both use these, so a run or a schedule
prints the same keys and the same ISO-8601 UTC instants (``iso_utc``) everywhere.
Pure functions: no I/O.
"""

from __future__ import annotations

from typing import Any

from jobsys.clock import iso_utc
from jobsys.cron import describe
from jobsys.store.rows import (
    AttemptRow,
    AuditRow,
    BatchRow,
    BatchWithCounts,
    LogLineRow,
    RunRow,
    RunSummary,
    RunWithLogs,
)
from jobsys.store.schedules import ScheduleView


def run_json(run: RunRow) -> dict[str, Any]:
    return {
        "id": run.id,
        "job_name": run.job_name,
        "status": run.status,
        "trigger": run.trigger,
        "schedule_id": run.schedule_id,
        "batch_id": run.batch_id,
        "scheduled_for": iso_utc(run.scheduled_for),
        "params": run.params,
        "triggered_by": run.triggered_by,
        "depends_on": run.depends_on,
        "position": run.position,
        "queued_at": iso_utc(run.queued_at),
        "started_at": iso_utc(run.started_at),
        "finished_at": iso_utc(run.finished_at),
        "duration_ms": run.duration_ms,
        "error": run.error,
        "timeout_s": run.timeout_s,
        "worker_id": run.worker_id,
        "exit_code": run.exit_code,
        "cancel_requested": run.cancel_requested,
        "progress_done": run.progress_done,
        "progress_total": run.progress_total,
        "attempt": run.attempt,
        "retry_of": run.retry_of,
        "not_before": iso_utc(run.not_before),
        "next_attempt_id": run.next_attempt_id,
    }


def attempt_json(attempt: AttemptRow) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "batch_id": attempt.batch_id,
        "attempt": attempt.attempt,
        "status": attempt.status,
        "not_before": iso_utc(attempt.not_before),
        "started_at": iso_utc(attempt.started_at),
        "finished_at": iso_utc(attempt.finished_at),
        "error": attempt.error,
    }


def log_line_json(line: LogLineRow, *, with_id: bool = True) -> dict[str, Any]:
    """A log line; ``with_id`` keeps its id (the cursor for paging the log)."""
    data: dict[str, Any] = {"id": line.id} if with_id else {}
    data |= {"ts": iso_utc(line.ts), "level": line.level, "message": line.message}
    return data


def run_with_logs_json(run: RunWithLogs) -> dict[str, Any]:
    """A run, the tail of its log (lines without ids) and how many lines are stored."""
    data = run_json(run)
    data["logs"] = [log_line_json(line, with_id=False) for line in run.logs]
    data["log_count"] = run.log_count
    return data


def log_line_text(line: LogLineRow) -> str:
    """A log line as the CLI prints it: instant, level, message."""
    return f"{iso_utc(line.ts)} {line.level:<7} {line.message}"


def run_summary_json(run: RunSummary) -> dict[str, Any]:
    return {
        "id": run.id,
        "batch_id": run.batch_id,
        "status": run.status,
        "trigger": run.trigger,
        "triggered_by": run.triggered_by,
        "queued_at": iso_utc(run.queued_at),
        "started_at": iso_utc(run.started_at),
        "finished_at": iso_utc(run.finished_at),
        "duration_ms": run.duration_ms,
        "error": run.error,
    }


def batch_json(batch: BatchRow) -> dict[str, Any]:
    return {
        "id": batch.id,
        "schedule_id": batch.schedule_id,
        "trigger": batch.trigger,
        "scheduled_for": iso_utc(batch.scheduled_for),
        "status": batch.status,
        "reason": batch.reason,
        "mode": batch.mode,
        "job_group": batch.job_group,
        "skip_dependencies": batch.skip_dependencies,
        "triggered_by": batch.triggered_by,
        "fired_by": batch.fired_by,
        "lateness_ms": batch.lateness_ms,
        "jitter_ms": batch.jitter_ms,
        "total_runs": batch.total_runs,
        "created_at": iso_utc(batch.created_at),
        "started_at": iso_utc(batch.started_at),
        "finished_at": iso_utc(batch.finished_at),
        "duration_ms": batch.duration_ms,
        "rerun_of": batch.rerun_of,
    }


def history_entry_json(batch: BatchWithCounts) -> dict[str, Any]:
    """A batch of a schedule's history with its runs per status (``counts``)."""
    data = batch_json(batch)
    data["counts"] = batch.counts
    return data


def audit_json(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": iso_utc(row.at),
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "before": row.before,
        "after": row.after,
        "ip": row.ip,
        "detail": row.detail,
    }


def schedule_json(view: ScheduleView) -> dict[str, Any]:
    """A schedule with its cron expression in words (``cron_description``)."""
    return {
        "id": view.id,
        "name": view.name,
        "description": view.description,
        "cron": view.cron,
        "cron_description": describe(view.cron),
        "timezone": view.timezone,
        "execution_mode": view.execution_mode,
        "job_group": view.job_group,
        "environments": view.environments,
        "missed_policy": view.missed_policy,
        "max_catch_up_s": view.max_catch_up_s,
        "overlap_policy": view.overlap_policy,
        "grace_s": view.grace_s,
        "enabled": view.enabled,
        "in_code": view.in_code,
        "env_active": view.env_active,
        "runnable": view.runnable,
        "last_run_at": iso_utc(view.last_run_at),
        "last_run_status": view.last_run_status,
        "last_batch_id": view.last_batch_id,
        "next_run_at": iso_utc(view.next_run_at),
        "run_count": view.run_count,
        "failure_count": view.failure_count,
        "consecutive_failures": view.consecutive_failures,
        "locked_by": view.locked_by,
        "job_name": view.job_name,
        "job_params": view.job_params,
        "pause_on_failure": view.pause_on_failure,
        "jitter_s": view.jitter_s,
        "paused_note": view.paused_note,
        "paused_by": view.paused_by,
        "paused_at": iso_utc(view.paused_at),
    }


def schedule_note(view: ScheduleView) -> str:
    """Why a schedule cannot run (empty when it can)."""
    if not view.in_code:
        return "not in code"
    if not view.env_active:
        return "not active in this environment"
    if not view.synced:
        return "not synced yet (the daemon syncs on start)"
    return ""


def next_run_text(view: ScheduleView) -> str:
    return iso_utc(view.next_run_at) or "-"


def last_run_text(view: ScheduleView) -> str:
    if view.last_run_at is None:
        return "-"
    return f"{iso_utc(view.last_run_at)} {view.last_run_status or ''}".strip()
