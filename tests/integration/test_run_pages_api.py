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
from jobsys.store.queries import list_runs
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


def walk(web: Web, query: dict[str, str], limit: int = 2) -> list[int]:
    """Every run id the filter gives, page after page (``limit`` a page)."""
    got: list[int] = []
    cursor: int | None = None
    for _ in range(100):
        params = {**query, "limit": str(limit)} | ({"cursor": str(cursor)} if cursor else {})
        response = web.get("/job-runs", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["searched"] is None  # 20,000 runs per page: never reached here
        got += [r["id"] for r in body["runs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return got
    raise AssertionError(f"{query}: more than 100 pages")


def mixed_runs(web: Web) -> None:
    """Runs of every trigger and most statuses, some queued at one instant (a batch), some
    with ids out of their queued order (a web host whose clock is behind)."""
    plans = schedule_plans(web.app)
    register(web, "daemon-1")
    web.post("/jobs/run-group/etl")  # runs 1-3, queued together at T0
    run_through(web, fail=frozenset({"transform"}))  # load is skipped: its dependency failed
    web.clock.set(T0 + timedelta(hours=2))
    web.post("/jobs/cleanup/run")  # 4 at +2 h
    web.clock.set(T0 + timedelta(hours=1))
    web.post("/schedules/nightly/trigger")  # 5-9 at +1 h: higher ids, queued earlier
    run_through(web, fail=frozenset({"extract"}))
    web.clock.set(T0 + timedelta(hours=3))
    assert web.put("/schedules/etl-hourly", {"enabled": True}).status_code == 200
    web.clock.set(at(15, 15, 2))  # +3 h 15: the etl-hourly slot fires (CRON)
    workers.heartbeat(web.engine, "daemon-1", web.clock.now())
    fire_due(web.engine, plans, worker_id="daemon-1", now=web.clock.now())
    run_through(web)
    web.clock.set(at(15, 30))
    queued = web.post("/jobs/cleanup/run").json()["job_run_ids"][0]
    assert web.post(f"/job-runs/{queued}/cancel").status_code == 200
    web.post("/jobs/extract/run")  # stays queued


def test_every_runs_page_filter_alone_and_with_a_time_window(web: Web) -> None:
    mixed_runs(web)
    every = web.get("/job-runs", params={"limit": "200"}).json()["runs"]
    assert [r["id"] for r in every] == sorted((r["id"] for r in every), reverse=True)
    assert {r["trigger"] for r in every} == {"MANUAL", "CRON"}
    assert {r["status"] for r in every} >= {"SUCCESS", "FAILED", "CANCELLED", "QUEUED"}
    assert any(r["error"] for r in every)

    def expected(query: dict[str, str]) -> list[int]:
        def keep(r: dict[str, object]) -> bool:
            return (
                ("job" not in query or r["job_name"] == query["job"])
                and ("status" not in query or r["status"] in query["status"].split(","))
                and ("trigger" not in query or r["trigger"] in query["trigger"].split(","))
                and ("schedule_id" not in query or r["schedule_id"] == query["schedule_id"])
                and ("from" not in query or str(r["queued_at"]) >= query["from"])
                and ("to" not in query or str(r["queued_at"]) < query["to"])
                and (
                    "error" not in query or query["error"].lower() in str(r["error"] or "").lower()
                )
            )

        kept = [r for r in every if keep(r)]
        if "from" in query or "to" in query:  # a time window lists newest queued first
            kept.sort(key=lambda r: (str(r["queued_at"]), int(str(r["id"]))), reverse=True)
        return [int(str(r["id"])) for r in kept]

    def hour(h: float) -> str:
        return str(iso_utc(T0 + timedelta(hours=h)))

    window = {"from": hour(0.5), "to": hour(2.5)}
    filters: list[dict[str, str]] = [
        {},
        {"job": "extract"},
        {"status": "FAILED"},
        {"status": "QUEUED,CANCELLED"},
        {"status": "SKIPPED"},
        {"trigger": "CRON"},
        {"trigger": "MANUAL"},
        {"schedule_id": "nightly"},
        {"schedule_id": "etl-hourly"},
        {"error": "BOOM"},
        {"error": "no such text"},
        {"error": "o"},  # errors of failed, cancelled and skipped runs, merged in order
        {"error": "boom", "status": "FAILED,SUCCESS"},
        {"error": "boom", "status": "SUCCESS"},  # no run that succeeded has an error
        {"job": "extract", "status": "FAILED"},
    ]
    windows: list[dict[str, str]] = [
        window,
        {"from": hour(0.5)},
        {"to": hour(1.5)},
        {"from": hour(0), "to": hour(1)},  # the batch queued at one instant
    ]
    checked = 0
    for one in filters:
        for time_filter in [{}, *windows]:
            query = {**one, **time_filter}
            assert walk(web, query) == expected(query), query
            checked += bool(expected(query))
    assert checked > 20  # most combinations list something
    statuses = {r["status"] for r in every if "o" in str(r["error"] or "")}
    assert statuses >= {"FAILED", "CANCELLED", "SKIPPED"}, statuses
    # Out of id order in the window: run 4 (queued +2 h) comes before runs 5-9 (+1 h).
    ids = walk(web, window)
    assert ids[0] == 4 and ids[1:] == [9, 8, 7, 6, 5]
    # A page boundary between runs queued at the same instant loses and repeats none.
    assert walk(web, {"from": hour(0), "to": hour(0.5)}, limit=1) == [3, 2, 1]


def test_error_search_reads_a_bounded_number_of_runs_per_page(web: Web) -> None:
    mixed_runs(web)
    for window in ({}, {"queued_from": T0}, {"queued_to": T0 + timedelta(hours=5)}):
        full = list_runs(web.engine, error_text="boom", limit=200, **window)  # type: ignore[arg-type]
        assert full.searched is None and len(full.items) >= 2
        # Three runs read per page: pages come back short, say where they stopped, and
        # together list exactly what one unbounded search lists, in the same order.
        got: list[int] = []
        stops = 0
        cursor: int | None = None
        while True:
            page = list_runs(
                web.engine,
                error_text="boom",
                limit=2,
                cursor=cursor,
                search_runs=3,
                **window,  # type: ignore[arg-type]
            )
            assert len(page.items) <= 2
            got += [r.id for r in page.items]
            if page.searched is not None:
                stops += 1
                assert page.searched.runs == 3 and page.next_cursor == page.searched.last_id
                at = page.searched.last_queued_at
                assert at is not None and at.tzinfo is not None
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert got == [r.id for r in full.items], window
        assert stops >= 2


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
    assert page["last_run"]["status"] == "QUEUED" and page["last_run"]["id"] == max(
        r["id"] for r in page["recent_runs"]
    )
    assert page["active"] == {"QUEUED": 1} and page["running_run_id"] is None
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
