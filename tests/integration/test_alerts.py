"""Alerts (jobsys.alerts): daemons on a fake clock POST to a local HTTP receiver one
"firing" message per incident and one "resolved" message when it clears, however many
daemons check; a receiver that fails is retried later and never breaks the loop."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.alerts import (
    DAEMON_SILENT,
    RUN_TOO_LONG,
    SCHEDULE_FAILING,
    SLOT_MISSED,
    Alerter,
    AlertSettings,
)
from jobsys.clock import FakeClock
from jobsys.definitions import App
from jobsys.manual import create_manual_batch
from jobsys.store.models import JobSchedule
from jobsys.store.schedules import set_enabled, sync_definitions
from tests.daemon_helpers import close_daemons, make_app, make_daemon, settle

#: Read by the ``flaky`` job in its forked child: set it before the run starts.
FLAKY = {"fail": True}


class Receiver:
    """A webhook receiver on 127.0.0.1 in a thread; ``status`` is what it answers."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                assert self.headers["Content-Type"] == "application/json"
                if receiver.status == 200:
                    receiver.bodies.append(body)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook?token=s3cret"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def summary(self) -> list[tuple[str, str, str]]:
        return [(b["status"], b["kind"], b["subject"]) for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(autouse=True)
def _close_daemons() -> Iterator[None]:
    FLAKY["fail"] = True
    yield
    close_daemons()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def build(a: App) -> None:
    @a.job(group="flaky")
    def flaky(ctx: Any) -> None:
        if FLAKY["fail"]:
            raise RuntimeError("flaky failed")

    @a.job(group="timed", timeout="5m")
    def timed(ctx: Any) -> None:
        time.sleep(float(ctx.params.get("seconds", 1.0)))

    a.schedule("f", cron="* * * * *", mode="GROUP", group="flaky")
    a.schedule("h", cron="0 * * * *", mode="GROUP", group="g")


def alerting(engine: Engine, app: App, clock: FakeClock, receiver: Receiver, **kw: Any) -> Any:
    return make_daemon(engine, app, clock, alert_webhook_url=receiver.url, **kw)


def enable(engine: Engine, app: App, schedule_id: str, now: datetime) -> None:
    set_enabled(engine, app, "development", schedule_id, True, now=now, actor="t")


def step(daemons: list[Any], clock: FakeClock, instant: datetime) -> None:
    clock.set(instant)
    for d in daemons:
        d.tick()
    for d in daemons:
        settle(d)


def test_a_failing_schedule_alerts_once_and_resolves_once(
    engine: Engine, receiver: Receiver
) -> None:
    app = make_app(build)
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    # two daemons check: still one message per incident
    daemons = [alerting(engine, app, clock, receiver) for _ in range(2)]
    enable(engine, app, "f", clock.now())
    minute = utc("2027-01-01T10:01:00")
    for n in range(3):  # three failures in a row
        step(daemons, clock, minute + timedelta(minutes=n))
    assert receiver.bodies == []
    step(daemons, clock, minute + timedelta(minutes=3))  # the check sees 3 failures
    assert receiver.summary() == [("firing", SCHEDULE_FAILING, "f")]
    first = receiver.bodies[0]
    assert set(first) == {"id", "status", "kind", "subject", "message", "since", "details"}
    assert first["details"]["consecutive_failures"] == 3
    assert first["since"] == "2027-01-01T10:04:00Z"
    assert "failed 3 times in a row" in first["message"]
    for n in range(4, 7):  # more failures: nothing new
        step(daemons, clock, minute + timedelta(minutes=n))
    assert len(receiver.bodies) == 1
    FLAKY["fail"] = False
    step(daemons, clock, minute + timedelta(minutes=7))  # succeeds
    step(daemons, clock, minute + timedelta(minutes=8))  # the check sees it
    assert receiver.summary() == [
        ("firing", SCHEDULE_FAILING, "f"),
        ("resolved", SCHEDULE_FAILING, "f"),
    ]
    resolved = receiver.bodies[1]
    assert resolved["id"] == first["id"] and resolved["since"] == first["since"]
    assert resolved["resolved_at"] == "2027-01-01T10:09:00Z"
    assert resolved["message"] == "schedule f succeeded again"
    step(daemons, clock, minute + timedelta(minutes=9))
    assert len(receiver.bodies) == 2
    # a new run of failures is a new incident
    FLAKY["fail"] = True
    for n in range(10, 14):
        step(daemons, clock, minute + timedelta(minutes=n))
    assert receiver.summary()[2:] == [("firing", SCHEDULE_FAILING, "f")]
    assert receiver.bodies[2]["id"] != first["id"]


def test_missed_slots_alert_once_and_resolve_when_a_slot_fires(
    engine: Engine, receiver: Receiver
) -> None:
    app = make_app(build)
    clock = FakeClock(utc("2027-01-01T09:30:00"))
    daemon = alerting(engine, app, clock, receiver)
    enable(engine, app, "h", clock.now())
    # the daemon is away from 09:30 to 12:30: 10:00, 11:00 and 12:00 are missed
    step([daemon], clock, utc("2027-01-01T12:30:00"))
    assert receiver.summary() == [("firing", SLOT_MISSED, "h")]
    details = receiver.bodies[0]["details"]
    assert details["count"] == 3
    assert (details["first_slot"], details["last_slot"]) == (
        "2027-01-01T10:00:00Z",
        "2027-01-01T12:00:00Z",
    )
    step([daemon], clock, utc("2027-01-01T12:45:00"))
    assert len(receiver.bodies) == 1
    step([daemon], clock, utc("2027-01-01T13:00:00.010"))  # fires: resolved
    assert receiver.summary()[1:] == [("resolved", SLOT_MISSED, "h")]
    assert "fired again: slot 2027-01-01T13:00:00Z" in receiver.bodies[1]["message"]
    # away from 13:10 to 15:00:30: 14:00 is missed and 15:00 fires in the same pass; the
    # firing message still goes first
    step([daemon], clock, utc("2027-01-01T13:10:00"))
    step([daemon], clock, utc("2027-01-01T15:00:30"))
    assert receiver.summary()[2:] == [
        ("firing", SLOT_MISSED, "h"),
        ("resolved", SLOT_MISSED, "h"),
    ]
    assert receiver.bodies[2]["details"]["first_slot"] == "2027-01-01T14:00:00Z"
    for minutes in (10, 50):
        step([daemon], clock, utc("2027-01-01T15:00:30") + timedelta(minutes=minutes))
    assert len(receiver.bodies) == 4


def test_runs_beyond_their_expected_duration_alert(engine: Engine, receiver: Receiver) -> None:
    app = make_app(build)
    clock = FakeClock(utc("2027-01-01T10:00:00"))
    daemon = alerting(engine, app, clock, receiver, alert_run_seconds=600)
    sync_definitions(engine, app, "development", clock.now())
    timed = create_manual_batch(
        engine, app, mode="JOB", job="timed", params={"seconds": 1.5}, now=clock.now(), actor="t"
    ).run_ids[0]
    untimed = create_manual_batch(
        engine, app, mode="JOB", job="slow", params={"seconds": 1.5}, now=clock.now(), actor="t"
    ).run_ids[0]
    daemon.tick()  # both start (the fake clock stands still while they run in real time)
    clock.advance(timedelta(minutes=6))  # past 5 min + 30 s for "timed", not 10 min
    daemon.tick()
    assert receiver.summary() == [("firing", RUN_TOO_LONG, str(timed))]
    assert receiver.bodies[0]["details"]["limit_s"] == 330
    assert "beyond its timeout of 300s" in receiver.bodies[0]["message"]
    clock.advance(timedelta(minutes=5))  # 11 minutes: "slow" has no timeout, 600 s
    daemon.tick()
    assert receiver.summary()[1:] == [("firing", RUN_TOO_LONG, str(untimed))]
    assert "JOBSYS_ALERT_RUN_SECONDS=600" in receiver.bodies[1]["message"]
    settle(daemon)  # both end
    clock.advance(timedelta(minutes=1))
    daemon.tick()
    assert sorted(receiver.summary()[2:]) == [
        ("resolved", RUN_TOO_LONG, str(timed)),
        ("resolved", RUN_TOO_LONG, str(untimed)),
    ]
    assert all(b["message"].endswith("ended: SUCCESS") for b in receiver.bodies[2:])


def test_a_silent_daemon_is_reported_by_a_live_one(engine: Engine, receiver: Receiver) -> None:
    app = make_app(build)
    clock = FakeClock(utc("2027-01-01T10:00:00"))
    watcher = alerting(engine, app, clock, receiver, lock_timeout_ms=3_600_000)
    quiet = make_daemon(engine, app, clock, lock_timeout_ms=3_600_000)
    for d in (watcher, quiet):
        d.tick()
    for _ in range(6):  # six minutes without a heartbeat from "quiet"
        clock.advance(timedelta(minutes=1))
        watcher.tick()
    assert receiver.summary() == [("firing", DAEMON_SILENT, quiet.worker_id)]
    assert "has not heartbeated for 6m00s" in receiver.bodies[0]["message"]
    quiet.tick()  # heartbeats again
    clock.advance(timedelta(minutes=1))
    watcher.tick()
    assert receiver.summary()[1:] == [("resolved", DAEMON_SILENT, quiet.worker_id)]
    assert receiver.bodies[1]["message"].endswith("heartbeats again")


def test_a_failing_receiver_is_logged_and_retried(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(build)
    now = utc("2027-01-01T10:00:00")
    sync_definitions(engine, app, "development", now)
    enable(engine, app, "f", now)
    with engine.begin() as conn:
        conn.execute(
            update(JobSchedule).where(col(JobSchedule.id) == "f").values(consecutive_failures=5)
        )
    sent: list[dict[str, Any]] = []
    failures = {"left": 2}

    def sender(url: str, body: dict[str, Any]) -> None:
        assert url == "https://alerts.example/hook"
        if failures["left"]:
            failures["left"] -= 1
            raise OSError("connection refused")
        sent.append(body)

    alerter = Alerter(
        engine, AlertSettings("https://alerts.example/hook"), worker_id="w", sender=sender
    )
    report = alerter.check(now)
    assert report.opened == [(SCHEDULE_FAILING, "f")] and report.failed == 1 and not sent
    assert "alert webhook to alerts.example failed (attempt 1 of 6)" in caplog.text
    assert "hook" not in caplog.text.split("alerts.example")[1][:5]  # the URL is not logged
    assert alerter.check(now + timedelta(seconds=30)).failed == 0  # backing off
    assert alerter.check(now + timedelta(seconds=61)).failed == 1  # 2nd attempt
    assert alerter.check(now + timedelta(seconds=62)).sent == 0  # backing off (120 s)
    report = alerter.check(now + timedelta(seconds=200))
    assert report.sent == 1 and [b["status"] for b in sent] == ["firing"]
    assert alerter.check(now + timedelta(seconds=300)).sent == 0  # once


def test_an_unreachable_receiver_does_not_break_the_daemon(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(build)
    clock = FakeClock(utc("2027-01-01T10:00:30"))
    r = Receiver()
    url = r.url
    r.close()  # nothing listens there now: connection refused
    daemon = make_daemon(engine, app, clock, alert_webhook_url=url)
    enable(engine, app, "f", clock.now())
    for n in range(5):
        started = time.monotonic()
        step([daemon], clock, utc("2027-01-01T10:01:00") + timedelta(minutes=n))
        assert time.monotonic() - started < 10
    assert "alert webhook to 127.0.0.1 failed" in caplog.text
    assert "s3cret" not in caplog.text


def test_alert_and_retention_settings() -> None:
    from jobsys.config import VARIABLES, Settings
    from jobsys.errors import ConfigError

    s = Settings.from_environ({})
    assert (s.alert_webhook_url, s.alert_failures, s.alert_run_seconds) == (None, 3, 3600)
    assert (s.alert_heartbeat_seconds, s.history_days, s.audit_days) == (300, 90, 365)
    url = "https://hooks.example/T0/secret-token"
    s = Settings.from_environ(
        {
            "JOBSYS_ALERT_WEBHOOK_URL": url,
            "JOBSYS_ALERT_FAILURES": "5",
            "JOBSYS_HISTORY_DAYS": "0",
        }
    )
    assert (s.alert_webhook_url, s.alert_failures, s.history_days) == (url, 5, 0)
    assert "secret-token" not in repr(s)
    for name, raw in (
        ("JOBSYS_ALERT_WEBHOOK_URL", "ftp://x/secret-token"),
        ("JOBSYS_ALERT_WEBHOOK_URL", "not a url"),
        ("JOBSYS_ALERT_FAILURES", "0"),
        ("JOBSYS_HISTORY_DAYS", "-1"),
        ("JOBSYS_AUDIT_DAYS", "many"),
        ("JOBSYS_ALERT_HEARTBEAT_SECONDS", "5"),
    ):
        with pytest.raises(ConfigError, match=name) as info:
            Settings.from_environ({name: raw})
        assert "secret-token" not in str(info.value)
    for name in (
        "JOBSYS_HISTORY_DAYS",
        "JOBSYS_AUDIT_DAYS",
        "JOBSYS_ALERT_WEBHOOK_URL",
        "JOBSYS_ALERT_FAILURES",
        "JOBSYS_ALERT_RUN_SECONDS",
        "JOBSYS_ALERT_HEARTBEAT_SECONDS",
    ):
        assert name in VARIABLES
