"""Issue 10 items 4, 5, 7, 8 on a fake clock, SQLite and MariaDB: pause on failure,
single-job schedules with params, jitter, and the repair of a lost next run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys import health, present
from jobsys.alerts import SCHEDULE_FAILING, SCHEDULE_PAUSED
from jobsys.clock import FakeClock
from jobsys.definitions import App
from jobsys.errors import DefinitionError
from jobsys.scheduler import jitter_offset
from jobsys.store.db import session
from jobsys.store.models import AuditLog, JobSchedule, RunStatus
from jobsys.store.schedules import get_view, set_enabled
from jobsys.store.upkeep import AUTO_PAUSED_BY
from tests.daemon_helpers import batches, close_daemons, make_app, make_daemon, runs_of, settle
from tests.integration.test_alerts import Receiver


@pytest.fixture(autouse=True)
def _close_daemons() -> Iterator[None]:
    yield
    close_daemons()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def enable(engine: Engine, app: App, schedule_id: str, now: datetime) -> None:
    set_enabled(engine, app, "development", schedule_id, True, now=now, actor="t")


def step(daemon: Any, clock: FakeClock, instant: datetime) -> None:
    clock.set(instant)
    daemon.tick()
    settle(daemon)


def audit_rows(engine: Engine, target: str) -> list[AuditLog]:
    with session(engine) as s:
        return list(
            s.execute(
                select(AuditLog).where(col(AuditLog.target_id) == target).order_by(col(AuditLog.id))
            ).scalars()
        )


# -- pause on failure -------------------------------------------------------------------
def test_pause_on_failure_disables_with_a_note_an_audit_row_and_an_alert(
    engine: Engine, receiver: Receiver
) -> None:
    app = make_app(lambda a: a.schedule("b", cron="* * * * *", mode="JOB", job="boom",
                                        pause_on_failure=2))  # fmt: skip
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock, alert_webhook_url=receiver.url, alert_failures=5)
    enable(engine, app, "b", clock.now())
    step(daemon, clock, utc("2027-01-01T10:01:00"))  # first failure
    row = get_view(engine, app, "development", "b")
    assert row.enabled and row.consecutive_failures == 1
    step(daemon, clock, utc("2027-01-01T10:02:00"))  # second: paused at once
    view = get_view(engine, app, "development", "b")
    assert not view.enabled and view.next_run_at is None
    assert view.paused_by == AUTO_PAUSED_BY
    assert view.paused_at == utc("2027-01-01T10:02:00")
    assert view.paused_note is not None
    assert "2 failed batches in a row (pause_on_failure=2)" in view.paused_note
    data = present.schedule_json(view)
    assert data["paused_note"] == view.paused_note and data["paused_at"] == "2027-01-01T10:02:00Z"
    disabled = [a for a in audit_rows(engine, "b") if a.action == "schedule.disable"]
    assert len(disabled) == 1 and disabled[0].actor == AUTO_PAUSED_BY
    assert disabled[0].after == {"enabled": False, "note": view.paused_note}
    for minute in range(3, 6):  # no more slots fire
        step(daemon, clock, utc(f"2027-01-01T10:0{minute}:00"))
    assert [b.status for b in batches(engine, "b")] == [RunStatus.FAILED] * 2
    assert receiver.summary() == [("firing", SCHEDULE_PAUSED, "b")]
    assert "2 failed batches in a row" in receiver.bodies[0]["message"]
    assert SCHEDULE_FAILING not in {b["kind"] for b in receiver.bodies}
    # enabled again by someone: note cleared, the alert resolves
    enable(engine, app, "b", clock.now())
    view = get_view(engine, app, "development", "b")
    assert view.enabled and view.paused_note is None and view.paused_by is None
    step(daemon, clock, utc("2027-01-01T10:06:30"))
    assert receiver.summary()[-1] == ("resolved", SCHEDULE_PAUSED, "b")
    view = get_view(engine, app, "development", "b")  # a fresh start, not paused at once
    assert view.enabled and view.consecutive_failures == 1


def test_without_pause_on_failure_a_failing_schedule_stays_enabled(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("b", cron="* * * * *", mode="GROUP", group="bad"))
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "b", clock.now())
    for minute in range(1, 5):
        step(daemon, clock, utc(f"2027-01-01T10:0{minute}:00"))
    view = get_view(engine, app, "development", "b")
    assert view.enabled and view.consecutive_failures == 4 and view.paused_note is None


# -- single-job schedules -----------------------------------------------------------------
def build_echo(a: App) -> None:
    @a.job(group="e", params={"n": {"type": "integer", "minimum": 1}, "tag": {"default": "x"}})
    def echo(ctx: Any) -> None:
        ctx.log.info(f"n={ctx.params['n']} tag={ctx.params['tag']}")

    a.schedule("one", cron="*/5 * * * *", mode="JOB", job="echo", params={"n": 7})


def test_a_job_schedule_fires_its_one_job_with_its_params(engine: Engine) -> None:
    app = make_app(build_echo)
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "one", clock.now())
    step(daemon, clock, utc("2027-01-01T10:05:00"))
    (batch,) = batches(engine, "one")
    assert batch.mode == "JOB" and batch.status == RunStatus.SUCCESS
    runs = runs_of(engine, batch.id or 0)
    assert list(runs) == ["echo"]
    assert runs["echo"].params == {"n": 7, "tag": "x"}  # defaults applied
    view = get_view(engine, app, "development", "one")
    assert (view.execution_mode, view.job_name, view.job_params) == ("JOB", "echo", {"n": 7})
    with session(engine) as s:
        row = s.get(JobSchedule, "one")
        assert row is not None and row.job_name == "echo" and row.job_params == {"n": 7}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job": "nope"}, "schedule 'bad': unknown job 'nope'"),
        ({"job": "echo", "params": {"n": "7"}}, "schedule 'bad': job 'echo': param 'n': expected"),
        ({"job": "echo", "params": {"n": 0}}, "schedule 'bad': job 'echo': param 'n': must be at"),
        ({"job": "echo", "params": {"m": 1}}, "schedule 'bad': job 'echo': unknown param"),
        ({"job": "echo"}, "schedule 'bad': job 'echo': param 'n' is required"),
    ],
)
def test_bad_job_schedules_fail_at_load_naming_the_schedule(
    kwargs: dict[str, Any], message: str
) -> None:
    app = App()
    build_echo(app)
    app.jobs["echo"].params["n"]["required"] = True  # type: ignore[index]
    app.schedule("bad", cron="* * * * *", mode="JOB", **kwargs)
    with pytest.raises(DefinitionError) as err:
        app.validate()
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "JOB"}, "schedule 's': mode JOB needs a job"),
        ({"job": "echo"}, "schedule 's': job 'echo' given but mode is ALL_JOBS"),
        ({"params": {"n": 1}}, "schedule 's': params are only accepted with mode='JOB'"),
        ({"mode": "JOB", "job": "echo", "params": [1]}, "schedule 's': params must be a mapping"),
        ({"pause_on_failure": 0}, "schedule 's': pause_on_failure 0 must be"),
        ({"pause_on_failure": True}, "schedule 's': pause_on_failure True must be"),
        ({"jitter": "abc"}, "schedule 's': jitter: duration 'abc' is not valid"),
        ({"jitter": "1.5s"}, "schedule 's': jitter '1.5s' must be whole seconds"),
        ({"jitter": 0}, "schedule 's': jitter: duration 0 must be positive"),
    ],
)
def test_bad_schedule_options_name_the_schedule(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as err:
        App().schedule("s", cron="* * * * *", **kwargs)
    assert str(err.value).startswith(message)


# -- jitter -------------------------------------------------------------------------------
def test_jitter_is_deterministic_per_slot_and_within_bounds() -> None:
    slots = [utc("2027-01-01T10:00:00") + timedelta(minutes=n) for n in range(200)]
    offsets = [jitter_offset("s", slot, 30) for slot in slots]
    assert offsets == [jitter_offset("s", slot, 30) for slot in slots]  # same every time
    assert all(timedelta(0) <= o <= timedelta(seconds=30) for o in offsets)
    assert len(set(offsets)) > 150  # spread, not one fixed delay
    assert max(offsets) > timedelta(seconds=25) and min(offsets) < timedelta(seconds=5)
    assert jitter_offset("other", slots[0], 30) != offsets[0]  # schedules spread apart
    assert jitter_offset("s", slots[0], 0) == timedelta(0)


def test_a_jittered_slot_starts_at_its_offset_recorded_on_the_batch(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("j", cron="* * * * *", mode="JOB", job="quick",
                                        jitter="30s"))  # fmt: skip
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "j", clock.now())
    fired: list[int] = []
    for minute in (1, 2, 3):
        slot = utc(f"2027-01-01T10:0{minute}:00")
        offset = jitter_offset("j", slot, 30)
        if offset > timedelta(milliseconds=1):
            step(daemon, clock, slot + offset - timedelta(milliseconds=1))
            assert len(batches(engine, "j")) == minute - 1, "fired before its offset"
        step(daemon, clock, slot + offset)
        got = batches(engine, "j")
        assert len(got) == minute
        assert got[-1].scheduled_for == slot and got[-1].status == RunStatus.SUCCESS
        assert got[-1].jitter_ms == int(offset.total_seconds() * 1000)
        assert got[-1].lateness_ms == 0  # counted from the jittered start
        fired.append(got[-1].jitter_ms or 0)
    assert len(set(fired)) > 1  # a different offset per slot
    # a long jitter is not "missed": its grace counts from the jittered start
    assert all(0 <= ms <= 30_000 for ms in fired)


def test_jitter_beyond_the_grace_is_not_a_missed_slot(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("k", cron="0 * * * *", mode="JOB", job="quick",
                                        jitter="10m", grace="30s"))  # fmt: skip
    clock = FakeClock(utc("2027-01-01T10:30:00"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "k", clock.now())
    slot = utc("2027-01-01T11:00:00")
    offset = jitter_offset("k", slot, 600)
    step(daemon, clock, slot + offset + timedelta(seconds=1))
    (batch,) = batches(engine, "k")
    assert batch.status == RunStatus.SUCCESS and batch.scheduled_for == slot
    assert batch.jitter_ms == int(offset.total_seconds() * 1000)


# -- repair of a lost next run --------------------------------------------------------------
@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (None, "next_run_at is empty"),
        (utc("2099-01-01T00:00:00"), "is after its next slot"),
        (utc("2027-01-01T10:07:30"), "is not a slot of its cron"),
    ],
)
def test_a_lost_next_run_is_reported_then_repaired_and_fires(
    engine: Engine, corrupt: datetime | None, problem: str
) -> None:
    app = make_app(lambda a: a.schedule("r", cron="*/5 * * * *", mode="JOB", job="quick"))
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "r", clock.now())
    step(daemon, clock, utc("2027-01-01T10:01:00"))
    assert health.evaluate(engine, clock.now()).status == health.OK
    with engine.begin() as conn:
        conn.execute(
            update(JobSchedule).where(col(JobSchedule.id) == "r").values(next_run_at=corrupt)
        )
    report = health.evaluate(engine, clock.now())
    assert report.status == health.WARNING
    assert report.lost == ["r"]
    assert "r: " in report.message and problem in report.message
    assert report.to_dict()["lost_next_run_schedules"] == ["r"]
    # the daemon repairs it on its next poll (every 60 s here), and logs and audits it
    step(daemon, clock, utc("2027-01-01T10:02:00"))
    with session(engine) as s:
        row = s.get(JobSchedule, "r")
        assert row is not None and row.next_run_at == utc("2027-01-01T10:05:00")
    (repair,) = [a for a in audit_rows(engine, "r") if a.action == "schedule.repair"]
    assert repair.after == {"next_run_at": "2027-01-01T10:05:00Z"}
    assert repair.detail is not None and problem in repair.detail
    assert health.evaluate(engine, clock.now()).status == health.OK
    step(daemon, clock, utc("2027-01-01T10:05:00"))
    assert [b.scheduled_for for b in batches(engine, "r")] == [utc("2027-01-01T10:05:00")]


def test_an_idle_poll_reads_the_schedules_only_when_they_changed(engine: Engine) -> None:
    # The poll's one statement carries a checksum of the runnable schedules; the
    # row-by-row look for a lost next run runs only when it changed.
    app = make_app(lambda a: a.schedule("r", cron="*/5 * * * *", mode="JOB", job="quick"))
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "r", clock.now())
    step(daemon, clock, utc("2027-01-01T10:01:00"))
    scans: list[str] = []

    def seen(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "job_schedule.cron" in statement:
            scans.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        step(daemon, clock, utc("2027-01-01T10:02:00"))
        step(daemon, clock, utc("2027-01-01T10:03:00"))
        assert scans == []  # nothing changed: two polls, no scan
        with engine.begin() as conn:  # by hand, as in the test above
            conn.execute(
                update(JobSchedule).where(col(JobSchedule.id) == "r").values(next_run_at=None)
            )
        step(daemon, clock, utc("2027-01-01T10:04:00"))
        assert len(scans) == 1
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with session(engine) as s:
        row = s.get(JobSchedule, "r")
        assert row is not None and row.next_run_at == utc("2027-01-01T10:05:00")


def test_a_correct_next_run_is_left_alone(engine: Engine) -> None:
    app = make_app(lambda a: a.schedule("r", cron="*/5 * * * *", mode="JOB", job="quick"))
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    daemon = make_daemon(engine, app, clock)
    enable(engine, app, "r", clock.now())
    for minute in range(1, 8):
        step(daemon, clock, utc(f"2027-01-01T10:0{minute}:00"))
    assert [a.action for a in audit_rows(engine, "r")] == ["schedule.enable"]
    assert len(batches(engine, "r")) == 1


def test_repair_remembers_rows_found_right_and_forgets_disabled_ones(engine: Engine) -> None:
    from jobsys.store.upkeep import Checked, repair_next_runs

    app = make_app(
        lambda a: [
            a.schedule(sid, cron="*/5 * * * *", mode="JOB", job="quick") for sid in ("a", "b")
        ]
    )
    now = utc("2027-01-01T10:00:30")
    make_daemon(engine, app, FakeClock(now))  # syncs the definitions
    for sid in ("a", "b"):
        enable(engine, app, sid, now)
    checked: Checked = {}
    assert repair_next_runs(engine, now=now, checked=checked) == []
    assert sorted(checked) == ["a", "b"]
    remembered = dict(checked)
    assert repair_next_runs(engine, now=now, checked=checked) == []
    assert checked == remembered
    set_enabled(engine, app, "development", "b", False, now=now, actor="t")
    assert repair_next_runs(engine, now=now, checked=checked) == []
    assert checked == {"a": remembered["a"]}  # b is no longer runnable: forgotten


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ("2027-01-01T10:05:00", None),  # the next slot
        ("2027-01-01T09:55:00", None),  # a past slot: due, firing deals with it
        ("2027-01-01T09:57:00", "is not a slot of its cron"),
        ("2027-01-01T10:10:00", "is after its next slot 2027-01-01T10:05:00+00:00"),
        ("2027-01-01T10:07:00", "is not a slot of its cron"),
    ],
)
def test_next_run_problem(stored: str, problem: str | None) -> None:
    from jobsys.scheduler import ScheduleTiming, next_run_problem

    why = next_run_problem(
        ScheduleTiming("*/5 * * * *", "UTC"), utc(stored), utc("2027-01-01T10:01:00")
    )
    assert why is None if problem is None else (why is not None and problem in why)
