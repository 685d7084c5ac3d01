"""Outcomes keep the child's end time when written late (issue 12 item 9), and the
missed-slot log line names the missed slot and its batch."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from jobsys.clock import FakeClock
from jobsys.definitions import App
from jobsys.manual import create_manual_batch
from jobsys.store.queries import get_run
from jobsys.store.schedules import set_enabled
from tests.daemon_helpers import batches, close_daemons, make_app, make_daemon

START = datetime(2030, 3, 4, 15, 20, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _cleanup() -> Any:
    yield
    close_daemons()


def test_a_run_written_late_keeps_its_true_end_and_duration(engine: Engine) -> None:
    clock = FakeClock(START)
    app = make_app()
    daemon = make_daemon(engine, app, clock)
    created = create_manual_batch(
        engine, app, mode="JOB", job="slow", params={"seconds": 0.3}, now=clock.now(), actor="t"
    )
    (run_id,) = created.run_ids
    daemon.tick()
    assert run_id in daemon.running
    time.sleep(1.0)  # the child ends meanwhile
    # The database was down for 130 s: the outcome is written only now.
    clock.advance(timedelta(seconds=130))
    deadline = time.monotonic() + 20
    while run_id in daemon.running and time.monotonic() < deadline:
        daemon.wake()
        daemon.tick()
        time.sleep(0.01)
    run = get_run(engine, run_id)
    assert run["status"] == "SUCCESS"
    assert 250 <= int(run["duration_ms"]) < 1500, run["duration_ms"]  # not 130,000+


def test_the_missed_slot_line_names_the_missed_slot(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def build(app: App) -> None:
        app.schedule("minutely", cron="* * * * *", name="minutely", mode="GROUP", group="g")

    clock = FakeClock(START)
    app = make_app(build)
    daemon = make_daemon(engine, app, clock)
    set_enabled(engine, app, "development", "minutely", True, now=clock.now(), actor="t")
    # Away across two minute boundaries: 15:21 is missed, 15:22 fires.
    clock.set(START.replace(minute=22, second=5))
    with caplog.at_level(logging.WARNING, logger="jobsys.daemon"):
        daemon.wake()
        daemon.tick()
    skipped = [b for b in batches(engine, "minutely") if b.status == "SKIPPED"]
    assert [b.scheduled_for for b in skipped] == [START.replace(minute=21, second=0)]
    (line,) = [r for r in caplog.records if "recorded as missed" in r.getMessage()]
    assert line.__dict__["slot"] == START.replace(minute=21, second=0).isoformat()
    assert line.__dict__["batch_id"] == skipped[0].id
    assert "15:21:00" in line.getMessage() and "15:22" not in line.getMessage()
