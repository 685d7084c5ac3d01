"""Alerts: a webhook told once when a problem starts and once when it clears.

With ``JOBSYS_ALERT_WEBHOOK_URL`` set, every daemon runs ``Alerter.check`` on its poll
period (``SCHEDULE_POLL_INTERVAL_MS``). A check reads a few small, indexed things, opens
and resolves incidents in ``alert_incident``, then delivers the messages still pending.

Kinds (``kind``, ``subject``):

``schedule_failing`` (schedule id)
    the schedule's last ``JOBSYS_ALERT_FAILURES`` (3) batches failed
    (``job_schedule.consecutive_failures``); resolved by a batch that succeeds, or when
    the schedule is disabled or leaves the code.
``schedule_paused`` (schedule id)
    the daemon disabled the schedule because its last ``pause_on_failure`` batches
    failed (``jobsys.store.upkeep``); resolved when someone enables it again (or it
    leaves the code).
``slot_missed`` (schedule id)
    a slot was recorded as missed (a SKIPPED batch whose reason is "missed": the
    daemons were down or stuck past the slot's grace); resolved when a later slot of the
    schedule fires. A daemon that comes back after an outage usually records the missed
    slots and fires the current one at once: then both messages go out together.
``run_too_long`` (run id)
    a run is still RUNNING ``TIMEOUT_SLACK_S`` (30 s) after its job's timeout (the
    executor should have ended it), or, for a job without a timeout, after
    ``JOBSYS_ALERT_RUN_SECONDS`` (3600; 0 disables this case); resolved when it ends.
``daemon_silent`` (worker id)
    another daemon, not marked STOPPED, has not heartbeated for
    ``JOBSYS_ALERT_HEARTBEAT_SECONDS`` (300, the critical age of ``jobsys health``);
    resolved when it heartbeats again or is marked STOPPED (it shut down, or another
    daemon recovered its work after ``LOCK_TIMEOUT_MS``). A daemon cannot report its own
    silence, so with a single daemon (or when all are down) nobody sends this one: point
    monitoring at ``jobsys health`` (CRITICAL without a heartbeat) for that case.

Once per incident, however many daemons check: opening an incident is an INSERT that
the unique key (kind, subject, dedupe_key) lets only one daemon make; resolving is a
conditional UPDATE; and a message is sent by the daemon whose conditional UPDATE
claimed the delivery attempt. A failed delivery is logged and retried later with
back-off (``MAX_ATTEMPTS`` in all); a check stops delivering at the first failure and
after ``DELIVERY_BUDGET_S``, so an unreachable receiver costs the loop one
``TIMEOUT_S`` (3 s) timeout per poll at most.

The body is JSON::

    {"status": "firing" | "resolved", "kind": ..., "subject": ..., "message": ...,
     "since": "<ISO-8601 UTC>", "resolved_at": "<ISO-8601 UTC>" (resolved only),
     "details": {...}, "id": <incident id>}
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from jobsys import __version__
from jobsys.clock import iso_utc
from jobsys.store import alerts as store
from jobsys.store.alerts import (
    AlertReads,
    Incident,
    RunningRun,
    ScheduleState,
    SkippedSlot,
    alert_reads,
)
from jobsys.store.retention import skip_reason
from jobsys.store.upkeep import AUTO_PAUSED_BY
from jobsys.vocabulary import WorkerStatus

log = logging.getLogger("jobsys.alerts")

SCHEDULE_FAILING = "schedule_failing"
SLOT_MISSED = "slot_missed"
RUN_TOO_LONG = "run_too_long"
DAEMON_SILENT = "daemon_silent"
SCHEDULE_PAUSED = "schedule_paused"
KINDS = (SCHEDULE_FAILING, SLOT_MISSED, RUN_TOO_LONG, DAEMON_SILENT, SCHEDULE_PAUSED)

OPEN = "open"  # dedupe_key of an open incident of a state kind
TIMEOUT_S = 3.0
TIMEOUT_SLACK_S = 30
MAX_ATTEMPTS = 6
RETRY_BASE_S = 60.0
RETRY_MAX_S = 3600.0
DELIVERY_BUDGET_S = 5.0
MAX_DELIVERIES = 20
#: Missed slots recorded longer ago than this never alert (e.g. when alerts are first
#: switched on); it is far longer than a poll period.
MISSED_LOOKBACK = timedelta(hours=1)

Sender = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class AlertSettings:
    webhook_url: str
    failures: int = 3
    run_seconds: int = 3600
    heartbeat_seconds: int = 300


@dataclass
class CheckReport:
    opened: list[tuple[str, str]] = field(default_factory=list)
    resolved: list[tuple[str, str]] = field(default_factory=list)
    sent: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Condition:
    message: str
    details: dict[str, Any]


def post_json(url: str, body: dict[str, Any]) -> None:
    """POST ``body`` as JSON; raises on a network error or a non-2xx answer."""
    data = json.dumps(body, sort_keys=True).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"jobsys/{__version__}"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        response.read(65536)


def payload(row: Incident) -> dict[str, Any]:
    """The webhook body of an incident row, for its pending message."""
    resolved = row.pending == "resolved"
    body: dict[str, Any] = {
        "id": row.id,
        "status": "resolved" if resolved else "firing",
        "kind": row.kind,
        "subject": row.subject,
        "message": (row.resolution or row.message) if resolved else row.message,
        "since": iso_utc(row.since),
        "details": dict(row.details or {}),
    }
    if resolved:
        body["resolved_at"] = iso_utc(row.resolved_at)
    return body


class Alerter:
    """Checks conditions and delivers alert messages; one per daemon."""

    def __init__(
        self,
        engine: Engine,
        settings: AlertSettings,
        *,
        worker_id: str,
        sender: Sender = post_json,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id
        self.sender = sender
        self.timer = timer
        self._target = urlsplit(settings.webhook_url).hostname or "?"  # never log the URL

    # -- the check -----------------------------------------------------------------
    def check(self, now: datetime) -> CheckReport:
        report = CheckReport()
        with alert_reads(self.engine) as reads:
            open_rows = reads.open_incidents()
            schedules = reads.schedules()
            wanted: dict[tuple[str, str], _Condition] = {}
            wanted |= self._failing(schedules)
            wanted |= _auto_paused(schedules)
            wanted |= self._long_runs(reads.running_runs(), now)
            wanted |= self._silent(reads, now)
            open_state = {(r.kind, r.subject): r for r in open_rows if r.kind != SLOT_MISSED}
            closing = [
                (row, self._why_cleared(reads, row))
                for key, row in open_state.items()
                if key not in wanted
            ]
            missed_new = self._new_missed(reads, now)
            open_missed = {r.subject: r for r in open_rows if r.kind == SLOT_MISSED}
        runnable = {s.id for s in schedules if s.runnable}

        for (kind, subject), cond in wanted.items():
            if (kind, subject) not in open_state and self._open(
                kind, subject, OPEN, cond, None, now
            ):
                report.opened.append((kind, subject))
        for row, why in closing:
            if self._resolve(row.id, why, now, keep_key=False):
                report.resolved.append((row.kind, row.subject))

        for schedule_id, batches in missed_new.items():
            cond = _missed_condition(schedule_id, batches)
            ref = batches[-1].id
            current = open_missed.get(schedule_id)
            if current is not None:
                self._extend_missed(current, batches, ref, now)
            elif self._open(SLOT_MISSED, schedule_id, str(batches[0].id), cond, ref, now):
                report.opened.append((SLOT_MISSED, schedule_id))
        self._resolve_missed(report, runnable, now)

        self._deliver(now, report)
        return report

    # -- conditions ----------------------------------------------------------------
    def _failing(self, schedules: Sequence[ScheduleState]) -> dict[tuple[str, str], _Condition]:
        out: dict[tuple[str, str], _Condition] = {}
        n = self.settings.failures
        for s in schedules:
            if s.runnable and s.consecutive_failures >= n:
                out[(SCHEDULE_FAILING, s.id)] = _Condition(
                    f"schedule {s.id} failed {s.consecutive_failures} times in a row "
                    f"(alert threshold {n})",
                    {
                        "schedule_id": s.id,
                        "consecutive_failures": s.consecutive_failures,
                        "threshold": n,
                        "last_batch_id": s.last_batch_id,
                        "last_run_status": s.last_run_status,
                    },
                )
        return out

    def _long_runs(
        self, rows: Sequence[RunningRun], now: datetime
    ) -> dict[tuple[str, str], _Condition]:
        out: dict[tuple[str, str], _Condition] = {}
        for r in rows:
            if r.started_at is None:
                continue
            if r.timeout_s:
                limit = r.timeout_s + TIMEOUT_SLACK_S
                expected = f"its timeout of {r.timeout_s}s"
            elif self.settings.run_seconds > 0:
                limit = self.settings.run_seconds
                expected = f"JOBSYS_ALERT_RUN_SECONDS={limit}"
            else:
                continue
            age = (now - r.started_at).total_seconds()
            if age > limit:
                out[(RUN_TOO_LONG, str(r.id))] = _Condition(
                    f"run {r.id} of job {r.job_name} has been running for {_human(age)}, "
                    f"beyond {expected}",
                    {
                        "run_id": r.id,
                        "job": r.job_name,
                        "batch_id": r.batch_id,
                        "schedule_id": r.schedule_id,
                        "started_at": iso_utc(r.started_at),
                        "timeout_s": r.timeout_s,
                        "limit_s": limit,
                        "worker_id": r.worker_id,
                    },
                )
        return out

    def _silent(self, reads: AlertReads, now: datetime) -> dict[tuple[str, str], _Condition]:
        out: dict[tuple[str, str], _Condition] = {}
        threshold = self.settings.heartbeat_seconds
        rows = reads.quiet_workers(heard_before=now - timedelta(seconds=threshold))
        for w in rows:
            if w.id == self.worker_id:
                continue
            age = (now - w.last_heartbeat_at).total_seconds()
            out[(DAEMON_SILENT, w.id)] = _Condition(
                f"daemon {w.id} on {w.hostname} has not heartbeated for {_human(age)} "
                f"(alert after {threshold}s)",
                {
                    "worker_id": w.id,
                    "hostname": w.hostname,
                    "pid": w.pid,
                    "last_heartbeat_at": iso_utc(w.last_heartbeat_at),
                    "threshold_s": threshold,
                },
            )
        return out

    def _why_cleared(self, reads: AlertReads, row: Incident) -> str:
        if row.kind == SCHEDULE_FAILING:
            s = next(iter(reads.schedules(row.subject)), None)
            if s is None or not s.runnable:
                return f"schedule {row.subject} is disabled or no longer runnable"
            return f"schedule {row.subject} succeeded again"
        if row.kind == SCHEDULE_PAUSED:
            return f"schedule {row.subject} was enabled again (or left the code)"
        if row.kind == RUN_TOO_LONG:
            status = reads.run_status(int(row.subject))
            return f"run {row.subject} ended: {status or 'deleted'}"
        if row.kind == DAEMON_SILENT:
            status = reads.worker_status(row.subject)
            if status == WorkerStatus.STOPPED:
                return f"daemon {row.subject} is marked STOPPED (shut down or recovered)"
            if status is None:
                return f"daemon {row.subject} is gone"
            return f"daemon {row.subject} heartbeats again"
        return "cleared"

    def _new_missed(self, reads: AlertReads, now: datetime) -> dict[str, list[SkippedSlot]]:
        """Missed slots recorded since the newest one an incident already covers."""
        rows = reads.skipped_cron_slots(updated_since=now - MISSED_LOOKBACK)
        missed = [r for r in rows if skip_reason(r.reason) == "missed"]
        if not missed:
            return {}
        covered = reads.newest_refs(SLOT_MISSED)  # refs only grow
        out: dict[str, list[SkippedSlot]] = {}
        for r in missed:
            if r.id > (covered.get(r.schedule_id) or 0):
                out.setdefault(r.schedule_id, []).append(r)
        return out

    # -- incident rows -------------------------------------------------------------
    def _open(
        self,
        kind: str,
        subject: str,
        key: str,
        cond: _Condition,
        ref: int | None,
        now: datetime,
    ) -> bool:
        """Insert the incident; False if another daemon already has it open."""
        if not store.open_incident(
            self.engine,
            kind=kind,
            subject=subject,
            dedupe_key=key,
            message=cond.message,
            details=cond.details,
            ref=ref,
            now=now,
            opened_by=self.worker_id,
        ):
            return False
        log.warning("alert: %s", cond.message, extra=_log_extra(cond.details))
        return True

    def _resolve(self, incident_id: int, why: str, now: datetime, *, keep_key: bool) -> bool:
        """Mark the incident resolved (once); its "resolved" message becomes pending,
        unless its "firing" message is still undelivered: that goes first."""
        done = store.resolve_incident(
            self.engine, incident_id, resolution=why, now=now, keep_key=keep_key
        )
        if done:
            log.info("alert resolved: %s", why)
        return done

    def _extend_missed(
        self, row: Incident, batches: list[SkippedSlot], ref: int, now: datetime
    ) -> None:
        details = dict(row.details or {})
        details["count"] = int(details.get("count", 0)) + len(batches)
        details["last_slot"] = iso_utc(batches[-1].scheduled_for)
        store.extend_incident(self.engine, row.id, ref=ref, details=details, now=now)

    def _resolve_missed(self, report: CheckReport, runnable: set[str], now: datetime) -> None:
        """A missed-slot incident clears when a later slot of its schedule fired."""
        with alert_reads(self.engine) as reads:
            clearing: list[tuple[int, str, str]] = []
            for r in reads.open_incidents(SLOT_MISSED):
                fired = reads.first_fired_after(r.subject, r.ref or 0)
                if fired is not None:
                    why = (
                        f"schedule {r.subject} fired again: slot "
                        f"{iso_utc(fired.scheduled_for)} (batch #{fired.id})"
                    )
                    clearing.append((r.id, r.subject, why))
                elif r.subject not in runnable:
                    clearing.append(
                        (r.id, r.subject, f"schedule {r.subject} is disabled or not runnable")
                    )
        for incident_id, subject, why in clearing:
            if self._resolve(incident_id, why, now, keep_key=True):
                report.resolved.append((SLOT_MISSED, subject))

    # -- delivery ------------------------------------------------------------------
    def _deliver(self, now: datetime, report: CheckReport) -> None:
        """Send what is pending, oldest first, within ``DELIVERY_BUDGET_S``; stop at the
        first failure (the receiver is down: the rest waits for a later check)."""
        started = self.timer()
        sent = 0
        while sent < MAX_DELIVERIES:
            with alert_reads(self.engine) as reads:
                rows = reads.due_deliveries(now, MAX_DELIVERIES - sent)
            if not rows:
                return
            for row in rows:
                if self.timer() - started > DELIVERY_BUDGET_S:
                    return
                outcome = self._send_one(row, now)
                if outcome is None:
                    continue  # another daemon is sending it
                if not outcome:
                    report.failed += 1
                    return
                report.sent += 1
                sent += 1

    def _send_one(self, row: Incident, now: datetime) -> bool | None:
        """Claim one delivery attempt and make it: None if another daemon claimed it."""
        pending = row.pending
        if pending is None:  # due_deliveries reads only rows with one
            return None
        backoff = min(RETRY_MAX_S, RETRY_BASE_S * 2**row.attempts)
        retry_at = now + timedelta(seconds=backoff)
        if not store.claim_delivery(
            self.engine, row.id, pending=pending, now=now, retry_at=retry_at
        ):
            return None
        try:
            self.sender(self.settings.webhook_url, payload(row))
        except Exception as exc:
            last = row.attempts + 1 >= MAX_ATTEMPTS
            log.warning(
                "alert webhook to %s failed (attempt %d of %d%s): %s",
                self._target,
                row.attempts + 1,
                MAX_ATTEMPTS,
                ", giving up on this message" if last else "",
                _reason(exc),
                extra=_log_extra(row.details or {}),
            )
            if last:
                self._done(row.id, pending, now, delivered=False)
            return False
        self._done(row.id, pending, now, delivered=True)
        return True

    def _done(self, incident_id: int, pending: str, now: datetime, *, delivered: bool) -> None:
        """The pending message is dealt with; a resolved incident whose "firing"
        message this was has its "resolved" message next."""
        store.finish_delivery(
            self.engine, incident_id, pending=pending, now=now, delivered=delivered
        )


def _auto_paused(schedules: Sequence[ScheduleState]) -> dict[tuple[str, str], _Condition]:
    """Schedules the daemon disabled for failing (``pause_on_failure``), still disabled."""
    return {
        (SCHEDULE_PAUSED, s.id): _Condition(
            f"schedule {s.id} was disabled: {s.paused_note}",
            {
                "schedule_id": s.id,
                "consecutive_failures": s.consecutive_failures,
                "last_batch_id": s.last_batch_id,
                "paused_at": iso_utc(s.paused_at),
            },
        )
        for s in schedules
        if not s.enabled and s.in_code and s.paused_by == AUTO_PAUSED_BY
    }


def _missed_condition(schedule_id: str, batches: list[SkippedSlot]) -> _Condition:
    first, last = batches[0].scheduled_for, batches[-1].scheduled_for
    slots = iso_utc(first) if len(batches) == 1 else f"{iso_utc(first)} .. {iso_utc(last)}"
    return _Condition(
        f"schedule {schedule_id} missed {len(batches)} slot(s): {slots}",
        {
            "schedule_id": schedule_id,
            "count": len(batches),
            "first_slot": iso_utc(first),
            "last_slot": iso_utc(last),
            "reason": batches[0].reason,
        },
    )


def _log_extra(details: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for name in ("schedule_id", "run_id", "batch_id", "job", "worker_id"):
        if details.get(name) is not None:
            extra[name] = details[name]
    return extra


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"


def _human(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
