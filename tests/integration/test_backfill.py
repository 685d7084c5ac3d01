"""Backfill (issue 10 item 3): one BACKFILL batch per past slot of a range, DST-correct,
at most one batch per slot, run in slot order one at a time; capped; dry run; the CLI
(a real child process) and the API (viewer 403, documented errors)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from jobsys.backfill import MAX_BACKFILL_SLOTS, backfill, backfill_slots
from jobsys.clock import FakeClock, iso_utc
from jobsys.definitions import App
from jobsys.errors import Conflict, DefinitionError, NotFound
from jobsys.store.models import JobBatch, RunStatus
from jobsys.store.schedules import set_enabled
from tests.daemon_helpers import batches, close_daemons, make_app, make_daemon, runs_of, settle
from tests.web_helpers import Web, audit_rows, web_harness

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _close_daemons() -> Iterator[None]:
    yield
    close_daemons()


def ny(text: str) -> datetime:
    """A New York wall time (the first occurrence when repeated) as aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=NY).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def slot_of(batch: JobBatch) -> datetime:
    assert batch.scheduled_for is not None
    return batch.scheduled_for


# -- the slots (pure) ------------------------------------------------------------------
def test_fixed_time_slots_across_fall_back_fire_once_a_day() -> None:
    slots = backfill_slots(
        "30 1 * * *", "America/New_York", ny("2027-11-06T00:00"), ny("2027-11-08T00:00"), label="x"
    )
    # 01:30 happens twice on 7 November (EDT, then EST): a fixed-time slot fires once
    assert [iso_utc(s) for s in slots] == ["2027-11-06T05:30:00Z", "2027-11-07T05:30:00Z"]


def test_wildcard_slots_across_fall_back_include_the_repeated_hour() -> None:
    slots = backfill_slots(
        "0 * * * *", "America/New_York", ny("2027-11-06T00:00"), ny("2027-11-08T00:00"), label="x"
    )
    assert len(slots) == 49  # 48 wall hours plus the repeated 01:00
    assert len(set(slots)) == 49 and slots == sorted(slots)
    assert utc("2027-11-07T05:00:00") in slots and utc("2027-11-07T06:00:00") in slots


def test_the_range_is_half_open_and_capped() -> None:
    start = utc("2027-01-01T00:00:00")
    exactly = backfill_slots("* * * * *", "UTC", start, utc("2027-01-01T16:40:00"), label="x")
    assert len(exactly) == MAX_BACKFILL_SLOTS == 1000
    assert exactly[0] == start and exactly[-1] == utc("2027-01-01T16:39:00")
    with pytest.raises(DefinitionError) as err:
        backfill_slots("* * * * *", "UTC", start, utc("2027-01-01T16:41:00"), label="schedule 'm'")
    assert str(err.value) == (
        "schedule 'm': backfill range 2027-01-01T00:00:00Z to 2027-01-01T16:41:00Z has more "
        "than 1000 slots; backfill it in smaller ranges"
    )
    with pytest.raises(DefinitionError, match="schedule 'm': backfill range is empty"):
        backfill_slots("* * * * *", "UTC", start, start, label="schedule 'm'")


# -- in the database, with a daemon -----------------------------------------------------
def ny_app() -> App:
    return make_app(
        lambda a: a.schedule(
            "ny", cron="0 * * * *", timezone="America/New_York", mode="GROUP", group="g"
        )
    )


NOW = utc("2027-11-09T12:00:00")
# 00:00 to 04:00 New York on the fall-back day: 00:00, 01:00 EDT, 01:00 EST, 02:00, 03:00
START, END = ny("2027-11-07T00:00"), ny("2027-11-07T04:00")
FALL_BACK_SLOTS = [utc(f"2027-11-07T{h:02d}:00:00") for h in (4, 5, 6, 7, 8)]


def run_backfill(engine: Engine, app: App, **kw: Any) -> Any:
    args: dict[str, Any] = {"start": START, "end": END, "now": NOW, "actor": "t"}
    args.update(kw)
    return backfill(engine, app, "ny", env="development", **args)


def test_backfill_across_fall_back_fires_each_slot_once_in_order(engine: Engine) -> None:
    app = ny_app()
    dry = run_backfill(engine, app, dry_run=True)
    assert dry.slots == FALL_BACK_SLOTS and not dry.created and not dry.existing
    assert batches(engine, "ny") == []  # a dry run creates nothing

    result = run_backfill(engine, app)
    assert [slot for slot, _ in result.created] == FALL_BACK_SLOTS
    daemon = make_daemon(engine, app, FakeClock(NOW))
    settle(daemon, limit_s=60)
    got = batches(engine, "ny")
    assert [(b.scheduled_for, b.trigger, b.status) for b in got] == [
        (slot, "BACKFILL", RunStatus.SUCCESS) for slot in FALL_BACK_SLOTS
    ]
    # one at a time, in slot order: each batch starts after the one before it ended
    spans = []
    for b in got:
        runs = runs_of(engine, b.id or 0).values()
        spans.append((min(r.started_at for r in runs if r.started_at), b.finished_at))
    for (_, ended), (began, _) in itertools.pairwise(spans):
        assert ended is not None and began >= ended

    again = run_backfill(engine, app)
    assert again.created == []
    assert [(e.slot, e.batch_id, e.trigger) for e in again.existing] == [
        (b.scheduled_for, b.id, "BACKFILL") for b in got
    ]
    assert len(batches(engine, "ny")) == 5
    actions = [row.after or {} for row in audit_rows(engine, "schedule.backfill")]
    assert [(a["created"], a["existing"]) for a in actions] == [(5, 0), (0, 5)]


def test_backfill_leaves_slots_that_have_a_batch_alone(engine: Engine) -> None:
    """A slot the daemon fired (or recorded as missed) keeps its batch."""
    app = ny_app()
    clock = FakeClock(utc("2027-11-07T05:59:00"))
    daemon = make_daemon(engine, app, clock)
    set_enabled(engine, app, "development", "ny", True, now=clock.now(), actor="t")
    clock.set(utc("2027-11-07T06:00:00"))  # 01:00 EST fires as CRON
    daemon.tick()
    settle(daemon)
    # disabled: the daemon owns no slot of the range any more (its next one was 02:00)
    set_enabled(engine, app, "development", "ny", False, now=clock.now(), actor="t")
    result = run_backfill(engine, app)
    assert [(e.slot, e.trigger) for e in result.existing] == [(FALL_BACK_SLOTS[2], "CRON")]
    assert [slot for slot, _ in result.created] == FALL_BACK_SLOTS[:2] + FALL_BACK_SLOTS[3:]
    entries = result.entries()
    assert [e["existing"] for e in entries] == [False, False, True, False, False]
    settle(daemon, limit_s=60)
    assert sorted(slot_of(b) for b in batches(engine, "ny")) == FALL_BACK_SLOTS


def test_backfill_stops_short_of_the_slots_the_daemon_has_not_fired(engine: Engine) -> None:
    """A daemon that is behind (down since 02:00) still owns the slots from its
    ``next_run_at``: a backfill batch there would collide with what it records."""
    app = ny_app()
    set_enabled(engine, app, "development", "ny", True, now=ny("2027-11-07T01:30"), actor="t")
    with pytest.raises(DefinitionError) as err:
        run_backfill(engine, app)
    assert str(err.value) == (
        "schedule 'ny': backfill range reaches the schedule's next slot 2027-11-07T06:00:00Z, "
        "which the daemon has not fired yet; end the range at or before it"
    )
    assert batches(engine, "ny") == []
    done = run_backfill(engine, app, end=utc("2027-11-07T06:00:00"))
    assert [slot for slot, _ in done.created] == FALL_BACK_SLOTS[:2]
    daemon = make_daemon(engine, app, FakeClock(NOW))  # fires the rest as missed
    settle(daemon, limit_s=60)
    got = [(b.scheduled_for, b.trigger) for b in batches(engine, "ny")]
    assert got[:2] == [(slot, "BACKFILL") for slot in FALL_BACK_SLOTS[:2]]
    assert (FALL_BACK_SLOTS[2], "CRON") in got


def test_parallel_backfill_batches_wait_for_the_one_n_slots_back(engine: Engine) -> None:
    result = run_backfill(engine, ny_app(), parallel=2)
    ids = [bid for _, bid in result.created]
    after = {b.id: b.after_batch_id for b in batches(engine, "ny")}
    assert [after[i] for i in ids] == [None, None, ids[0], ids[1], ids[2]]


def test_backfill_refuses_the_future_unknown_and_inactive_schedules(engine: Engine) -> None:
    app = ny_app()
    app.schedule("prod", cron="0 * * * *", environments=["production"])
    with pytest.raises(DefinitionError, match=r"schedule 'ny': backfill --to .* is in the future"):
        run_backfill(engine, app, now=START)
    with pytest.raises(NotFound):
        backfill(engine, app, "nope", start=START, end=END, now=NOW, actor="t", env="development")
    with pytest.raises(Conflict):
        backfill(engine, app, "prod", start=START, end=END, now=NOW, actor="t", env="development")
    with pytest.raises(DefinitionError, match="parallel must be between 1 and 100"):
        run_backfill(engine, app, parallel=0)
    assert batches(engine, "ny") == []


# -- API --------------------------------------------------------------------------------
@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def test_api_backfill_dry_run_then_create_then_nothing_new(web: Web) -> None:
    # etl-hourly: "15 * * * *" in Europe/Paris; T0 is 2030-01-07 12:00 UTC
    body = {"from": "2030-01-07T08:00:00Z", "to": "2030-01-07T11:00:00Z", "dry_run": True}
    dry = web.post("/schedules/etl-hourly/backfill", body)
    assert dry.status_code == 200, dry.text
    slots = ["2030-01-07T08:15:00Z", "2030-01-07T09:15:00Z", "2030-01-07T10:15:00Z"]
    assert dry.json() == {
        "schedule_id": "etl-hourly",
        "dry_run": True,
        "created": 0,
        "existing": 0,
        "slots": [
            {"slot": s, "existing": False, "batch_id": None, "status": None, "trigger": None}
            for s in slots
        ],
    }
    assert batches(web.engine, "etl-hourly") == []
    body["dry_run"] = False
    made = web.post("/schedules/etl-hourly/backfill", body)
    assert made.status_code == 200 and made.json()["created"] == 3
    again = web.post("/schedules/etl-hourly/backfill", body).json()
    assert again["created"] == 0 and again["existing"] == 3
    assert [e["trigger"] for e in again["slots"]] == ["BACKFILL"] * 3
    assert [e["batch_id"] for e in again["slots"]] == [e["batch_id"] for e in made.json()["slots"]]


@pytest.mark.parametrize(
    ("schedule", "body", "status", "words"),
    [
        ("etl-hourly", {"from": "2029-11-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, 422,
         "more than 1000 slots"),
        ("etl-hourly", {"from": "2030-01-07T08:00:00Z", "to": "2030-01-08T08:00:00Z"}, 422,
         "in the future"),
        ("etl-hourly", {"from": "yesterday", "to": "2030-01-07T08:00:00Z"}, 422,
         "not an ISO-8601 instant"),
        ("etl-hourly", {"from": "2030-01-07T08:00:00Z"}, 422, "required"),
        ("etl-hourly", {"from": "2030-01-07T08:00:00Z", "to": "2030-01-07T09:00:00Z",
                        "concurrency": 0}, 422, "between 1 and 100"),
        ("nope", {"from": "2030-01-07T08:00:00Z", "to": "2030-01-07T09:00:00Z"}, 404,
         "unknown schedule"),
        ("prod-only", {"from": "2030-01-07T08:00:00Z", "to": "2030-01-07T09:00:00Z"}, 409,
         "not active"),
    ],
)  # fmt: skip
def test_api_backfill_errors(
    web: Web, schedule: str, body: dict[str, Any], status: int, words: str
) -> None:
    got = web.post(f"/schedules/{schedule}/backfill", body)
    assert got.status_code == status, got.text
    assert words in got.json()["error"]["message"]
    assert batches(web.engine, schedule) == []


def test_api_backfill_needs_the_admin_role(web: Web) -> None:
    body = {"from": "2030-01-07T08:00:00Z", "to": "2030-01-07T11:00:00Z", "dry_run": True}
    got = web.post("/schedules/etl-hourly/backfill", body, headers=web.viewer)
    assert got.status_code == 403
    assert audit_rows(web.engine, "schedule.backfill") == []


# -- CLI (a real child process) ----------------------------------------------------------
def cli(args: list[str], db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "DATABASE_URL"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=db_url,
        JOBSYS_APP=str(ROOT / "tests" / "apps" / "backfill_app.py"),
    )
    return subprocess.run(
        [sys.executable, "-m", "jobsys", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_backfill_dry_run_json_create_and_again(db_url: str, engine: Engine) -> None:
    # the CLI's clock is real: New York's fall-back day of 2025, in the past
    base = ["schedules", "backfill", "ny-hourly", "--from", "2025-11-02T00:00:00-04:00"]
    base += ["--to", "2025-11-02T04:00:00-05:00"]
    slots = [utc(f"2025-11-02T{h:02d}:00:00") for h in (4, 5, 6, 7, 8)]
    dry = cli([*base, "--dry-run"], db_url)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [f"{iso_utc(s)}  would be backfilled" for s in slots]
    assert "would create 5 batch(es)" in dry.stderr
    listed = cli([*base, "--dry-run", "--json"], db_url)
    assert [e["slot"] for e in json.loads(listed.stdout)] == [iso_utc(s) for s in slots]
    assert batches(engine, "ny-hourly") == []

    made = cli([*base, "--json"], db_url)
    assert made.returncode == 0, made.stderr
    entries = json.loads(made.stdout)
    assert [e["existing"] for e in entries] == [False] * 5
    again = cli(base, db_url)
    assert again.returncode == 0, again.stderr
    ids = [e["batch_id"] for e in entries]
    assert again.stdout.splitlines() == [
        f"{iso_utc(s)}  has batch {bid} (BACKFILL, QUEUED): left alone"
        for s, bid in zip(slots, ids, strict=True)
    ]
    assert len(batches(engine, "ny-hourly")) == 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--from", "soon", "--to", "2025-11-07T04:00:00Z"], "--from 'soon' is not an ISO-8601"),
        (["--from", "2025-01-01T00:00:00Z", "--to", "2025-03-01T00:00:00Z"],
         "schedule 'ny-hourly': backfill range"),
        (["--from", "2025-11-07T04:00:00Z", "--to", "2025-11-07T05:00:00Z", "--parallel", "0"],
         "--parallel: must be an integer between 1 and 100"),
    ],
)  # fmt: skip
def test_cli_backfill_bad_input_exits_2(db_url: str, extra: list[str], message: str) -> None:
    got = cli(["schedules", "backfill", "ny-hourly", *extra], db_url)
    assert got.returncode == 2
    assert message in got.stderr and "Traceback" not in got.stderr
