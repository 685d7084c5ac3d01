"""The formatting of store rows (issue 13, item 3): ``jobsys.present`` and
``jobsys.web.views`` turn typed rows with datetimes into the API's JSON and the CLI's
text. Pure: the rows are built by hand, no database."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobsys import present
from jobsys.definitions import App
from jobsys.store.rows import (
    AuditRow,
    BatchRow,
    BatchWithCounts,
    BatchWithRuns,
    JobActivity,
    LogLineRow,
    LogPage,
    RunRow,
    RunSummary,
    RunWithLogs,
)
from jobsys.store.schedules import ScheduleView
from jobsys.web import views

T0 = datetime(2030, 1, 7, 12, 0, 0, tzinfo=UTC)

RUN_KEYS = [
    "id",
    "job_name",
    "status",
    "trigger",
    "schedule_id",
    "batch_id",
    "scheduled_for",
    "params",
    "triggered_by",
    "depends_on",
    "position",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "error",
    "timeout_s",
    "worker_id",
    "exit_code",
    "cancel_requested",
    "progress_done",
    "progress_total",
    "attempt",
    "retry_of",
    "not_before",
    "next_attempt_id",
]
BATCH_KEYS = [
    "id",
    "schedule_id",
    "trigger",
    "scheduled_for",
    "status",
    "reason",
    "mode",
    "job_group",
    "skip_dependencies",
    "triggered_by",
    "fired_by",
    "lateness_ms",
    "jitter_ms",
    "total_runs",
    "created_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "rerun_of",
]


def run_row(**changes: Any) -> RunRow:
    run = RunRow(
        id=7,
        job_name="extract",
        status="SUCCESS",
        trigger="CRON",
        schedule_id="nightly",
        batch_id=3,
        scheduled_for=T0,
        params={"limit": 10},
        triggered_by=None,
        depends_on=["seed"],
        position=1,
        queued_at=T0 + timedelta(microseconds=900),
        started_at=T0 + timedelta(seconds=1, microseconds=123_456),
        finished_at=T0 + timedelta(seconds=3, microseconds=5_000),
        duration_ms=1881,
        error=None,
        timeout_s=300,
        worker_id="daemon-1",
        exit_code=0,
        cancel_requested=False,
        progress_done=3,
        progress_total=4,
        attempt=1,
        retry_of=None,
        not_before=None,
        next_attempt_id=None,
    )
    return replace(run, **changes)


def batch_row(**changes: Any) -> BatchRow:
    batch = BatchRow(
        id=3,
        schedule_id="nightly",
        trigger="CRON",
        scheduled_for=T0,
        status="RUNNING",
        reason=None,
        mode="ALL_JOBS",
        job_group=None,
        skip_dependencies=False,
        triggered_by=None,
        fired_by="daemon-1",
        lateness_ms=12,
        jitter_ms=None,
        total_runs=2,
        created_at=T0 + timedelta(microseconds=900),
        started_at=T0 + timedelta(seconds=1),
        finished_at=None,
        duration_ms=None,
        rerun_of=None,
    )
    return replace(batch, **changes)


def schedule_view(**changes: Any) -> ScheduleView:
    view = ScheduleView(
        id="nightly",
        name="Nightly",
        description="Everything at 2am",
        cron="0 2 * * *",
        timezone="Europe/Paris",
        execution_mode="ALL_JOBS",
        job_group=None,
        environments=None,
        missed_policy="SKIP",
        max_catch_up_s=None,
        overlap_policy="SKIP",
        grace_s=60,
        enabled=True,
        in_code=True,
        env_active=True,
        synced=True,
        last_run_at=T0 + timedelta(microseconds=250_999),
        last_run_status="FAILED",
        last_batch_id=3,
        next_run_at=T0 + timedelta(days=1),
        run_count=4,
        failure_count=1,
        consecutive_failures=1,
        locked_by=None,
    )
    return replace(view, **changes)


def no_datetimes(value: Any) -> None:
    """The JSON module alone can write it: no datetime (nor anything else) left over."""
    json.dumps(value)


def test_a_run_has_the_api_keys_in_order_and_iso_instants() -> None:
    data = present.run_json(run_row())
    assert list(data) == RUN_KEYS
    assert data["scheduled_for"] == "2030-01-07T12:00:00Z"  # whole seconds: no fraction
    assert data["queued_at"] == "2030-01-07T12:00:00.000Z"  # below a millisecond: cut
    assert data["started_at"] == "2030-01-07T12:00:01.123Z"
    assert data["finished_at"] == "2030-01-07T12:00:03.005Z"
    assert (data["params"], data["depends_on"], data["cancel_requested"]) == (
        {"limit": 10},
        ["seed"],
        False,
    )
    no_datetimes(data)
    unset = present.run_json(run_row(scheduled_for=None, started_at=None, finished_at=None))
    assert (unset["scheduled_for"], unset["started_at"], unset["finished_at"]) == (None,) * 3


def test_an_instant_in_another_zone_is_shown_in_utc() -> None:
    paris = datetime(2030, 1, 7, 13, 0, 0, tzinfo=UTC).astimezone()  # any zone
    assert present.run_json(run_row(queued_at=paris))["queued_at"] == "2030-01-07T13:00:00Z"


def test_log_lines_in_json_and_text() -> None:
    line = LogLineRow(11, T0 + timedelta(milliseconds=5), "ERROR", "boom")
    assert present.log_line_json(line) == {
        "id": 11,
        "ts": "2030-01-07T12:00:00.005Z",
        "level": "ERROR",
        "message": "boom",
    }
    assert list(present.log_line_json(line, with_id=False)) == ["ts", "level", "message"]
    assert present.log_line_text(line) == "2030-01-07T12:00:00.005Z ERROR   boom"


def test_a_run_with_its_log_tail_as_the_cli_prints_it() -> None:
    lines = [LogLineRow(i, T0, "INFO", f"line {i}") for i in (4, 5)]
    run = RunWithLogs(**vars(run_row()), logs=lines, log_count=5)
    data = present.run_with_logs_json(run)
    assert list(data) == [*RUN_KEYS, "logs", "log_count"]
    assert data["logs"] == [
        {"ts": "2030-01-07T12:00:00Z", "level": "INFO", "message": "line 4"},
        {"ts": "2030-01-07T12:00:00Z", "level": "INFO", "message": "line 5"},
    ]
    assert data["log_count"] == 5


def test_run_detail_adds_progress_and_a_page_of_logs() -> None:
    page = LogPage([LogLineRow(9, T0, "INFO", "hello")], earlier=8, later=2)
    data = views.run_detail(run_row(), page)
    assert list(data) == [
        *RUN_KEYS,
        "progress_percent",
        "logs",
        "log_count",
        "logs_earlier",
        "logs_later",
    ]
    assert data["progress_percent"] == 75.0
    assert data["logs"] == [
        {"id": 9, "ts": "2030-01-07T12:00:00Z", "level": "INFO", "message": "hello"}
    ]
    assert (data["log_count"], data["logs_earlier"], data["logs_later"]) == (11, 8, 2)
    no_datetimes(data)
    for done, total in ((None, None), (3, 0), (3, None)):
        bare = views.run_detail(run_row(progress_done=done, progress_total=total), page)
        assert bare["progress_percent"] is None
    over = views.run_detail(run_row(progress_done=9, progress_total=4), page)
    assert over["progress_percent"] == 100.0


def test_a_batch_with_its_runs_counts_and_timeline() -> None:
    runs = [
        run_row(id=7, status="SUCCESS"),
        run_row(id=8, job_name="load", status="QUEUED", started_at=None, finished_at=None),
    ]
    batch = BatchWithRuns(**vars(batch_row()), runs=runs)
    data = views.batch_view(batch)
    assert list(data) == [*BATCH_KEYS, "runs", "counts", "timeline"]
    assert data["created_at"] == "2030-01-07T12:00:00.000Z"
    assert data["runs"] == [present.run_json(r) for r in runs]
    assert data["counts"] == {"SUCCESS": 1, "QUEUED": 1}
    first, second = data["timeline"]
    # Offsets from the creation, from the instants as shown (to the millisecond):
    # created 12:00:00.000, started 12:00:01.123, finished 12:00:03.005.
    assert first == {
        "run_id": 7,
        "job_name": "extract",
        "status": "SUCCESS",
        "attempt": 1,
        "depends_on": ["seed"],
        "start_ms": 1123,
        "end_ms": 3005,
        "wait_ms": 1123,
        "duration_ms": 1881,
    }
    assert (second["start_ms"], second["end_ms"], second["wait_ms"]) == (None, None, None)
    no_datetimes(data)


def test_timeline_offsets_agree_with_the_instants_shown() -> None:
    """Created at .000900 and started at .001100 show as .000 and .001: the bar starts
    1 ms in, not 0 (the 0.2 ms between the stored values)."""
    created = T0 + timedelta(microseconds=900)
    run = run_row(queued_at=created, started_at=T0 + timedelta(microseconds=1100))
    bars = views.batch_timeline(BatchWithRuns(**vars(batch_row(created_at=created)), runs=[run]))
    assert (bars[0]["start_ms"], bars[0]["wait_ms"]) == (1, 1)
    started_before = run_row(started_at=T0)  # a clock step back: never negative
    bars = views.batch_timeline(
        BatchWithRuns(**vars(batch_row(created_at=created)), runs=[started_before])
    )
    assert bars[0]["start_ms"] == 0


def test_a_history_entry_and_an_audit_entry() -> None:
    entry = present.history_entry_json(BatchWithCounts(**vars(batch_row()), counts={"FAILED": 2}))
    assert list(entry) == [*BATCH_KEYS, "counts"]
    assert entry["counts"] == {"FAILED": 2}
    audit = present.audit_json(
        AuditRow(
            id=1,
            at=T0 + timedelta(milliseconds=42),
            actor="cli",
            action="run.cancel",
            target_type="run",
            target_id="7",
            before={"status": "RUNNING"},
            after={"status": "RUNNING", "cancel_requested": True},
            ip=None,
            detail=None,
        )
    )
    assert audit == {
        "id": 1,
        "at": "2030-01-07T12:00:00.042Z",
        "actor": "cli",
        "action": "run.cancel",
        "target_type": "run",
        "target_id": "7",
        "before": {"status": "RUNNING"},
        "after": {"status": "RUNNING", "cancel_requested": True},
        "ip": None,
        "detail": None,
    }


def test_a_schedule_as_the_api_returns_it() -> None:
    data = views.schedule_entry(schedule_view())
    assert data["cron_description"] == "At 02:00 every day"
    assert data["runnable"] is True
    assert data["last_run_at"] == "2030-01-07T12:00:00.250Z"
    assert data["next_run_at"] == "2030-01-08T12:00:00Z"
    assert data["note"] == ""
    assert data["missed_policy_description"].startswith("SKIP: a slot not fired within 60 s")
    assert list(data)[-2:] == ["note", "missed_policy_description"]
    assert list(present.schedule_json(schedule_view())) == list(data)[:-2]
    no_datetimes(data)


@pytest.mark.parametrize(
    ("changes", "note"),
    [
        ({"in_code": False}, "not in code"),
        ({"env_active": False}, "not active in this environment"),
        ({"synced": False}, "not synced yet (the daemon syncs on start)"),
        ({}, ""),
    ],
)
def test_why_a_schedule_cannot_run(changes: dict[str, Any], note: str) -> None:
    assert present.schedule_note(schedule_view(**changes)) == note


def test_schedule_texts_for_the_cli() -> None:
    view = schedule_view()
    assert present.next_run_text(view) == "2030-01-08T12:00:00Z"
    assert present.last_run_text(view) == "2030-01-07T12:00:00.250Z FAILED"
    idle = schedule_view(next_run_at=None, last_run_at=None, last_run_status=None)
    assert (present.next_run_text(idle), present.last_run_text(idle)) == ("-", "-")
    unknown = schedule_view(last_run_status=None)
    assert present.last_run_text(unknown) == "2030-01-07T12:00:00.250Z"


def test_a_job_with_its_activity() -> None:
    app = App("t")

    @app.job(group="etl", description="Extract rows")
    def extract(ctx: Any) -> None:
        return None

    last = RunSummary(7, 3, "FAILED", "MANUAL", "alice", T0, T0, T0, 0, "boom")
    data = views.job_entry(app, "extract", JobActivity(last, 7, {"RUNNING": 1}))
    assert data["last_run"] == {
        "id": 7,
        "batch_id": 3,
        "status": "FAILED",
        "trigger": "MANUAL",
        "triggered_by": "alice",
        "queued_at": "2030-01-07T12:00:00Z",
        "started_at": "2030-01-07T12:00:00Z",
        "finished_at": "2030-01-07T12:00:00Z",
        "duration_ms": 0,
        "error": "boom",
    }
    assert (data["running_run_id"], data["active"]) == (7, {"RUNNING": 1})
    assert data["isolation"] == "pool"
    idle = views.job_entry(app, "extract", JobActivity(None, None, {}), "process")
    assert (idle["last_run"], idle["running_run_id"], idle["active"]) == (None, None, {})
    assert idle["isolation"] == "process"  # the application's, for a job without its own


def test_a_jobs_own_isolation_wins_over_the_applications() -> None:
    app = App("t")

    @app.job(group="etl", isolation="process")
    def fresh(ctx: Any) -> None:
        return None

    data = views.job_entry(app, "fresh", JobActivity(None, None, {}), "pool")
    assert data["isolation"] == "process"


def test_a_run_reads_by_key_like_the_dicts_it_replaced() -> None:
    run = run_row()
    assert run["status"] == "SUCCESS" and run["started_at"] == run.started_at
    with pytest.raises(KeyError):
        run["nope"]
    with pytest.raises(KeyError):
        run["__init__"]  # fields only
    line = LogLineRow(1, T0, "INFO", "x")
    assert line["message"] == "x"
