"""The API behind the runs page, the job page and the schedule page (issue 11 items 2
and 3), on SQLite and MariaDB through the real Starlette app: run filters by time and
error text, a job's stats, a schedule's next slots with DST marks, and the slot ledger
built from real firing, audit and worker rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from jobsys.clock import iso_utc
from jobsys.planning import schedule_plans
from jobsys.store import workers
from jobsys.store.firing import fire_due
from jobsys.store.models import WorkerStatus
from tests.integration.test_web_api import run_through
from tests.web_helpers import T0, Web, web_harness


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def register(web: Web, worker_id: str) -> None:
    workers.register(
        web.engine,
        worker_id=worker_id,
        hostname="host-a",
        pid=4242,
        wake_host=None,
        wake_port=None,
        version="test",
        concurrency=2,
        now=web.clock.now(),
    )


def bad(web: Web, path: str, *needles: str) -> str:
    response = web.get(path)
    assert response.status_code == 400, (path, response.text)
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    for needle in needles:
        assert needle in error["message"], (path, error["message"])
    return str(error["message"])


# -- the runs page --------------------------------------------------------------------
def test_job_runs_filter_by_queued_time_and_error_text(web: Web) -> None:
    web.post("/jobs/extract/run")  # run 1 at T0
    web.clock.advance(3600)
    web.post("/jobs/cleanup/run")  # run 2 at T0 + 1 h
    web.clock.advance(3600)
    web.post("/jobs/extract/run")  # run 3 at T0 + 2 h
    run_through(web, fail=frozenset({"extract"}))  # the extracts fail with "boom"

    def ids(query: str) -> list[int]:
        response = web.get(f"/job-runs?{query}")
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["runs"]]

    hour = iso_utc(T0 + timedelta(hours=1))
    assert ids(f"from={hour}") == [3, 2]
    assert ids(f"to={hour}") == [1]
    assert ids(f"from={hour}&to={iso_utc(T0 + timedelta(hours=2))}") == [2]
    assert ids("from=2030-01-07T13:00:00%2B01:00") == [3, 2, 1]  # an offset, URL-encoded
    assert ids("error=BOO") == [3, 1]  # case-insensitive
    assert ids("error=boom&job=extract&limit=1") == [3]
    assert ids("error=%25") == []  # LIKE wildcards are literal text
    assert ids(f"error=boom&from={hour}") == [3]
    bad(web, "/job-runs?from=yesterday", "'from'", "ISO-8601")
    bad(web, "/job-runs?to=2030-13-01T00:00:00Z", "'to'")
    bad(web, f"/job-runs?from={hour}&to={hour}", "'to' must be after 'from'")
    bad(web, "/job-runs?error=" + "x" * 201, "'error'", "200")
    bad(web, "/job-runs?from=0001-01-01T00:00:00Z", "1970")
    assert web.get("/job-runs?error=boom", headers=web.viewer).status_code == 200


# -- a job's page ---------------------------------------------------------------------
def test_job_page_neighbours_runs_durations_and_success_rates(web: Web) -> None:
    for i in range(4):
        web.post("/jobs/transform/run")
        run_through(web, fail=frozenset({"transform"}) if i == 0 else frozenset())
    web.clock.advance(timedelta(days=2))  # the first four leave the 24 h window
    web.post("/jobs/transform/run")
    run_through(web, fail=frozenset({"transform"}))
    web.post("/jobs/transform/run")  # queued, not finished
    page = web.get("/jobs/transform").json()
    assert page["name"] == "transform" and page["group"] == "etl"
    assert page["upstream"] == ["extract"] and page["downstream"] == ["load"]
    assert page["timeout_s"] == 300
    assert [r["status"] for r in page["recent_runs"]] == [
        "QUEUED",
        "FAILED",
        "SUCCESS",
        "SUCCESS",
        "SUCCESS",
        "FAILED",
    ]
    assert len(page["durations"]) == 5  # finished only, oldest first
    assert [d["run_id"] for d in page["durations"]] == sorted(
        d["run_id"] for d in page["durations"]
    )
    assert all(d["duration_ms"] == 1500 for d in page["durations"])
    assert page["duration_p50_ms"] == 1500 and page["duration_p95_ms"] == 1500
    day, week = page["success"]["24h"], page["success"]["7d"]
    assert (day["succeeded"], day["failed"], day["rate"]) == (0, 1, 0.0)
    assert (week["succeeded"], week["failed"], week["rate"]) == (3, 2, 0.6)
    assert week["since"] == iso_utc(web.clock.now() - timedelta(days=7))
    empty = web.get("/jobs/cleanup").json()
    assert empty["recent_runs"] == [] and empty["duration_p50_ms"] is None
    assert empty["success"]["24h"]["rate"] is None
    assert web.get("/jobs/nope").status_code == 404
    assert web.get("/jobs/transform", headers=web.viewer).status_code == 200
    assert web.post("/jobs/transform/run", {}, headers=web.viewer).status_code == 403


# -- a schedule's next slots ----------------------------------------------------------
def test_next_slots_mark_the_daylight_saving_change(web: Web) -> None:
    # Europe/Paris springs forward on 2030-03-31 at 02:00 (UTC+1 -> UTC+2).
    after = "2030-03-30T20:00:00Z"
    got = web.get(f"/schedules/etl-hourly/slots?count=6&after={after}").json()
    assert got["timezone"] == "Europe/Paris"
    slots = got["slots"]
    assert len(slots) == 6
    assert [s["local"][11:16] for s in slots] == [
        "21:15",
        "22:15",
        "23:15",
        "00:15",
        "01:15",
        "03:15",
    ]
    assert [s["dst_change"] for s in slots[:5]] == [None] * 5
    assert slots[5]["dst_change"] == {"from": "+01:00", "to": "+02:00"}
    assert slots[5]["utc_offset"] == "+02:00" and "summer time starts" in slots[5]["note"]
    assert slots[5]["at"] == "2030-03-31T01:15:00Z"
    default = web.get("/schedules/nightly/slots", headers=web.viewer).json()["slots"]
    assert len(default) == 10 and default[0]["at"] == "2030-01-08T02:00:00Z"
    bad(web, "/schedules/nightly/slots?count=0", "'count'")
    bad(web, "/schedules/nightly/slots?count=51", "'count'")
    bad(web, "/schedules/nightly/slots?after=soon", "'after'")
    assert web.get("/schedules/nope/slots").status_code == 404


# -- the slot ledger --------------------------------------------------------------------
def at(hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return T0.replace(hour=hh, minute=mm, second=ss)


def test_ledger_accounts_for_every_slot_from_real_records(web: Web) -> None:
    plans = schedule_plans(web.app)
    register(web, "daemon-1")
    assert web.put("/schedules/etl-hourly", {"enabled": True}).status_code == 200  # at 12:00

    def fire(now: datetime, worker: str) -> None:
        web.clock.set(now)
        workers.heartbeat(web.engine, worker, now)
        fire_due(web.engine, plans, worker_id=worker, now=now)

    fire(at(12, 15, 1), "daemon-1")  # on time
    run_through(web)
    fire(at(13, 15, 30), "daemon-1")
    run_through(web, fail=frozenset({"extract"}))
    workers.set_status(web.engine, "daemon-1", WorkerStatus.STOPPED, at(13, 20))
    web.clock.set(at(15, 40))
    register(web, "daemon-2")
    fire(at(15, 40), "daemon-2")  # 14:15 and 15:15 are recorded as missed
    web.clock.set(at(15, 50))
    web.put("/schedules/etl-hourly", {"enabled": False, "note": "maintenance"})
    web.clock.set(at(16, 50))
    web.put("/schedules/etl-hourly", {"enabled": True})
    workers.set_status(web.engine, "daemon-2", WorkerStatus.STOPPED, at(16, 55))
    web.clock.set(at(17, 30))  # 17:15 came with no daemon alive

    got = web.get(f"/schedules/etl-hourly/ledger?from={iso_utc(at(11))}&to={iso_utc(at(19))}")
    assert got.status_code == 200, got.text
    ledger = got.json()
    slots = {s["slot"][11:16]: s for s in ledger["slots"]}
    assert list(slots) == [f"{h}:15" for h in range(11, 19)]
    assert ledger["expected"] == 8 and sum(ledger["counts"].values()) == 8
    fates = {k: (s["fate"], s["cause"]) for k, s in slots.items()}
    assert fates == {
        "11:15": ("skipped", "not_created"),
        "12:15": ("succeeded", None),
        "13:15": ("failed", None),
        "14:15": ("skipped", "daemon_down"),
        "15:15": ("skipped", "daemon_down"),
        "16:15": ("skipped", "disabled"),
        "17:15": ("skipped", "daemon_down"),
        "18:15": ("not_yet_due", None),
    }
    assert slots["12:15"]["on_time"] is True and slots["12:15"]["late_ms"] == 1000
    assert slots["13:15"]["late_ms"] == 30_000 and slots["13:15"]["batch_id"] is not None
    assert slots["14:15"]["reason"].startswith("missed:") and slots["14:15"]["batch_id"]
    assert slots["17:15"]["batch_id"] is None and "no daemon" in slots["17:15"]["reason"]
    assert slots["12:15"]["local"] == "2030-01-07T13:15+01:00"  # the schedule's zone
    assert ledger["causes"] == {"not_created": 1, "daemon_down": 3, "disabled": 1}
    assert ledger["unmatched"] == []

    # The default window is the last day and the next hour; viewers may read it.
    default = web.get("/schedules/etl-hourly/ledger", headers=web.viewer).json()
    assert default["from"] == iso_utc(at(17, 30) - timedelta(days=1))
    assert default["slots"][-1]["fate"] == "not_yet_due"


def test_ledger_refuses_bad_windows(web: Web) -> None:
    path = "/schedules/nightly/ledger"
    bad(web, f"{path}?from={iso_utc(T0)}&to={iso_utc(T0)}", "end must be after its start")
    bad(web, f"{path}?from={iso_utc(T0)}&to={iso_utc(T0 + timedelta(days=8))}", "at most 7 days")
    bad(web, f"{path}?from=last-week", "'from'", "ISO-8601")
    week = f"from={iso_utc(T0)}&to={iso_utc(T0 + timedelta(days=7))}"
    assert web.get(f"{path}?{week}").status_code == 200
    # Every 5 minutes for 7 days is 2,016 slots: more than one ledger lists.
    bad(web, f"/schedules/prod-only/ledger?{week}", "more than 2000 slots")
    assert web.get("/schedules/nope/ledger").status_code == 404
    not_here = web.get("/schedules/prod-only/ledger").json()  # production only
    assert {s["cause"] for s in not_here["slots"]} == {"not_in_environment"}
