"""The JSON API on a real database (SQLite and MariaDB) through the real Starlette app:
every route's answer and fields, unknown ids, audit rows and daemon wake-ups."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.clock import iso_utc
from jobsys.store import workers
from jobsys.store.db import write_engine
from jobsys.store.models import JobBatch, JobRun, JobSchedule
from jobsys.store.runs import append_logs, claim_runnable, finish_run, set_progress
from jobsys.store.schedules import sync_definitions
from jobsys.wake import WakeListener
from jobsys.web.routing import Access
from tests.web_helpers import ADMIN, API, T0, Web, audit_rows, make_app, web_harness

ISO_Z = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$"


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


@pytest.fixture
def listener(web: Web) -> Iterator[WakeListener]:
    """A live daemon's wake socket, registered as a worker instance."""
    sock = WakeListener("127.0.0.1", 0)
    workers.register(
        web.engine,
        worker_id="daemon-1",
        hostname="host-a",
        pid=4242,
        wake_host="127.0.0.1",
        wake_port=sock.port,
        version="test",
        concurrency=2,
        now=web.clock.now(),
    )
    try:
        yield sock
    finally:
        sock.close()


def woken(listener: WakeListener, timeout: float = 2.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = listener.drain()
        if count:
            return count
        time.sleep(0.01)
    return 0


def run_through(web: Web, *, fail: frozenset[str] = frozenset()) -> None:
    """Act as a daemon: claim every runnable run and finish it (FAILED if named)."""
    for _ in range(10):
        claimed = claim_runnable(
            web.engine,
            worker_id="daemon-1",
            limit=10,
            clock=web.clock.now,
            known_jobs=list(web.app.jobs),
        )
        if not claimed:
            return
        for run in claimed:
            web.clock.advance(1.5)
            finish_run(
                web.engine,
                run.run_id,
                worker_id="daemon-1",
                status="FAILED" if run.job_name in fail else "SUCCESS",
                error="boom" if run.job_name in fail else None,
                exit_code=1 if run.job_name in fail else 0,
                started_at=run.started_at,
                now=web.clock.now(),
            )


# -- health, pages, openapi -----------------------------------------------------------
def test_healthz_is_public_and_says_nothing_else(web: Web) -> None:
    response = web.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ui_pages_are_served_with_a_placeholder_when_no_ui_is_built(
    web: Web, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobsys.web import pages
    from jobsys.web.app import create_app
    from tests.web_helpers import TestClient, settings_for

    monkeypatch.setattr(pages, "resource_dir", lambda name: tmp_path)  # no index.html
    bare = create_app(
        settings=settings_for(web.engine), app=web.app, engine=web.engine, clock=web.clock
    )
    with TestClient(bare) as client:
        for path in ("/admin", "/admin/login", "/admin/schedules/nightly"):
            response = client.get(path)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
            assert "admin UI is not installed" in response.text
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert client.get("/", follow_redirects=False).headers["location"] == "/admin"


def test_openapi_describes_every_route(web: Web) -> None:
    from jobsys.web.api import api_routes

    assert web.client.get(f"{API}/openapi.json").status_code == 401
    doc = web.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    for route in api_routes():
        operation = doc["paths"][route.path][route.method.lower()]
        assert str(route.status) in operation["responses"]
        if route.access is not Access.PUBLIC:
            assert "401" in operation["responses"]
        for schema in (route.request_schema, route.response_schema):
            if schema:
                assert schema in doc["components"]["schemas"]
    assert "get" in doc["paths"]["/api/admin/events"]


def test_unknown_api_path_and_wrong_method_are_json(web: Web) -> None:
    missing = web.get("/no-such-thing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = web.client.delete(f"{API}/schedules", headers=web.admin)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert web.client.get("/api").status_code == 404


def test_api_answers_are_not_cached(web: Web) -> None:
    response = web.get("/schedules")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


# -- schedules ------------------------------------------------------------------------
def test_list_schedules_merges_code_and_database(web: Web) -> None:
    response = web.get("/schedules")
    assert response.status_code == 200
    schedules = {s["id"]: s for s in response.json()["schedules"]}
    assert set(schedules) == {"nightly", "etl-hourly", "prod-only"}
    nightly = schedules["nightly"]
    for field in (
        "id",
        "name",
        "description",
        "cron",
        "timezone",
        "execution_mode",
        "job_group",
        "enabled",
        "in_code",
        "last_run_at",
        "last_run_status",
        "next_run_at",
        "run_count",
        "failure_count",
        "locked_by",
        "cron_description",
        "missed_policy",
        "missed_policy_description",
        "note",
    ):
        assert field in nightly, field
    assert nightly["name"] == "Nightly"
    assert nightly["enabled"] is False  # new schedules start disabled
    assert nightly["cron_description"] == "At 02:00 every day"
    assert nightly["missed_policy"] == "SKIP"
    assert "skipped" in nightly["missed_policy_description"]
    hourly = schedules["etl-hourly"]
    assert (hourly["execution_mode"], hourly["job_group"]) == ("GROUP", "etl")
    assert hourly["timezone"] == "Europe/Paris"
    prod = schedules["prod-only"]
    assert prod["env_active"] is False and prod["runnable"] is False
    assert prod["note"] == "not active in this environment"


def test_get_schedule_and_unknown_id(web: Web) -> None:
    response = web.get("/schedules/etl-hourly")
    assert response.status_code == 200
    assert response.json()["id"] == "etl-hourly"
    missing = web.get("/schedules/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "unknown schedule 'nope'"}}


def test_enable_disable_and_put_toggle_with_audit_and_wake(
    web: Web, listener: WakeListener
) -> None:
    enabled = web.post("/schedules/nightly/enable")
    assert enabled.status_code == 200
    body = enabled.json()
    assert body["enabled"] is True
    assert body["next_run_at"] == "2030-01-08T02:00:00Z"  # from now, no back-fill
    assert woken(listener) >= 1

    disabled = web.post("/schedules/nightly/disable")
    assert disabled.status_code == 200
    assert disabled.json()["enabled"] is False and disabled.json()["next_run_at"] is None

    put = web.put("/schedules/nightly", {"enabled": True})
    assert put.status_code == 200 and put.json()["enabled"] is True
    again = web.put("/schedules/nightly", {"enabled": True})  # no change, no audit row
    assert again.status_code == 200

    rows = audit_rows(web.engine)
    toggles = [(r.action, r.actor, r.target_id, r.ip) for r in rows if r.action.startswith("sch")]
    assert toggles == [
        ("schedule.enable", ADMIN, "nightly", "203.0.113.7"),
        ("schedule.disable", ADMIN, "nightly", "203.0.113.7"),
        ("schedule.enable", ADMIN, "nightly", "203.0.113.7"),
    ]
    first = next(r for r in rows if r.action == "schedule.enable")
    assert first.before == {"enabled": False, "next_run_at": None}
    assert first.after == {"enabled": True, "next_run_at": "2030-01-08T02:00:00Z"}


def test_toggle_unknown_not_in_code_and_inactive_schedules(web: Web) -> None:
    assert web.post("/schedules/nope/enable").status_code == 404
    assert web.post("/schedules/nope/disable").status_code == 404
    assert web.put("/schedules/nope", {"enabled": False}).status_code == 404
    inactive = web.post("/schedules/prod-only/enable")
    assert inactive.status_code == 409
    assert "not active in environment 'development'" in inactive.json()["error"]["message"]
    # a schedule whose row remains after it left the code
    bigger = make_app()
    bigger.schedule("retired", cron="0 5 * * *")
    sync_definitions(web.engine, bigger, "development", web.clock.now(), mark_removed=False)
    listed = {s["id"]: s for s in web.get("/schedules").json()["schedules"]}
    assert listed["retired"]["in_code"] is False
    assert listed["retired"]["note"] == "not in code"
    refused = web.post("/schedules/retired/enable")
    assert refused.status_code == 409
    assert "no longer in code" in refused.json()["error"]["message"]
    assert web.post("/schedules/retired/trigger").status_code == 409
    assert web.post("/schedules/retired/disable").status_code == 200


def test_trigger_creates_a_batch_without_moving_next_run(web: Web, listener: WakeListener) -> None:
    web.post("/schedules/etl-hourly/enable")
    listener.drain()
    before = web.get("/schedules/etl-hourly").json()["next_run_at"]
    response = web.post("/schedules/etl-hourly/trigger")
    assert response.status_code == 202
    created = response.json()
    assert set(created) == {"batch_id", "job_run_ids"}
    assert len(created["job_run_ids"]) == 3  # the etl group
    assert woken(listener) >= 1
    after = web.get("/schedules/etl-hourly").json()
    assert after["next_run_at"] == before
    assert after["last_run_status"] == "QUEUED" and after["run_count"] == 1
    batch = web.get(f"/batches/{created['batch_id']}").json()
    assert [r["job_name"] for r in batch["runs"]] == ["extract", "transform", "load"]
    assert batch["mode"] == "GROUP" and batch["trigger"] == "MANUAL"
    assert batch["triggered_by"] == ADMIN
    trigger = audit_rows(web.engine, "schedule.trigger")
    assert [(a.actor, a.target_id, a.ip) for a in trigger] == [(ADMIN, "etl-hourly", "203.0.113.7")]
    assert trigger[0].after == {"batch_id": created["batch_id"], "runs": 3}
    assert web.post("/schedules/nope/trigger").status_code == 404
    assert web.post("/schedules/prod-only/trigger").status_code == 409


def test_history_pages_newest_first_with_counts(web: Web) -> None:
    batch_ids = []
    for _ in range(3):
        batch_ids.append(web.post("/schedules/nightly/trigger").json()["batch_id"])
        web.clock.advance(60)
    run_through(web, fail=frozenset({"transform"}))
    first = web.get("/schedules/nightly/history?limit=2")
    assert first.status_code == 200
    page = first.json()
    assert page["schedule_id"] == "nightly"
    assert [b["id"] for b in page["batches"]] == [batch_ids[2], batch_ids[1]]
    assert page["next_cursor"] == batch_ids[1]
    entry = page["batches"][0]
    for field in ("scheduled_for", "duration_ms", "reason", "status", "counts", "created_at"):
        assert field in entry
    assert entry["status"] == "FAILED"
    assert entry["counts"] == {"SUCCESS": 3, "FAILED": 1, "SKIPPED": 1}
    assert entry["duration_ms"] is not None and entry["duration_ms"] > 0
    rest = web.get(f"/schedules/nightly/history?limit=2&cursor={page['next_cursor']}").json()
    assert [b["id"] for b in rest["batches"]] == [batch_ids[0]]
    assert rest["next_cursor"] is None
    assert web.get("/schedules/etl-hourly/history").json()["batches"] == []
    assert web.get("/schedules/nope/history").status_code == 404
    for bad in ("limit=0", "limit=201", "limit=x", "cursor=-1", "cursor=1.5"):
        response = web.get(f"/schedules/nightly/history?{bad}")
        assert response.status_code == 400, bad
        assert bad.split("=")[0] in response.json()["error"]["message"]


def test_history_shows_missed_slots_with_their_reason(web: Web) -> None:
    from jobsys.store.db import session

    with session(web.engine) as s:
        s.add(
            JobBatch(
                schedule_id="nightly",
                trigger="CRON",
                scheduled_for=T0 - timedelta(hours=10),
                status="SKIPPED",
                reason="missed: no daemon fired it within 60s",
                mode="ALL_JOBS",
                created_at=T0,
                updated_at=T0,
            )
        )
        s.commit()
    entry = web.get("/schedules/nightly/history").json()["batches"][0]
    assert entry["status"] == "SKIPPED"
    assert entry["scheduled_for"] == "2030-01-07T02:00:00Z"
    assert entry["reason"].startswith("missed")
    assert entry["counts"] == {}


def test_validate_cron(web: Web) -> None:
    ok = web.post("/schedules/validate-cron", {"cron": "*/15 9-17 * * MON-FRI", "timezone": "UTC"})
    assert ok.status_code == 200
    assert ok.json()["valid"] is True and ok.json()["description"]
    bad = web.post("/schedules/validate-cron", {"cron": "61 * * * *", "timezone": "UTC"})
    assert bad.status_code == 200
    assert bad.json()["valid"] is False and "minute" in bad.json()["error"]
    zone = web.post("/schedules/validate-cron", {"cron": "0 * * * *", "timezone": "Mars/Base"})
    assert zone.json() == {"valid": False, "error": "unknown timezone 'Mars/Base'"}
    never = web.post("/schedules/validate-cron", {"cron": "0 0 30 2 *"})
    assert never.json()["valid"] is False
    # viewers may validate: it changes nothing
    assert web.post("/schedules/validate-cron", {"cron": "@daily"}, headers=web.viewer).json()[
        "valid"
    ]


def test_preview_runs(web: Web) -> None:
    response = web.post(
        "/schedules/preview-runs",
        {
            "cron": "30 1 * * *",
            "timezone": "America/New_York",
            "after": "2030-11-02T12:00:00Z",
            "count": 3,
        },
    )
    assert response.status_code == 200
    # New York falls back on 2030-11-03: 01:30 EDT, then 01:30 EST the next days
    assert response.json()["runs"] == [
        "2030-11-03T05:30:00Z",
        "2030-11-04T06:30:00Z",
        "2030-11-05T06:30:00Z",
    ]
    default = web.post("/schedules/preview-runs", {"cron": "0 * * * *"}).json()
    assert default["runs"][0] == "2030-01-07T13:00:00Z"  # after the injected clock's now
    assert len(default["runs"]) == 5
    assert web.post("/schedules/preview-runs", {"cron": "bad"}).status_code == 422
    assert (
        web.post("/schedules/preview-runs", {"cron": "* * * * *", "count": 51}).status_code == 422
    )
    assert web.post("/schedules/preview-runs", {"cron": "* * * * *", "count": 0}).status_code == 422
    far = web.post("/schedules/preview-runs", {"cron": "* * * * *", "after": "9999-12-31T23:59Z"})
    assert far.status_code == 422


# -- jobs -----------------------------------------------------------------------------
def test_list_jobs_in_dependency_order_with_last_run(web: Web) -> None:
    run_id = web.post("/jobs/extract/run").json()["job_run_ids"][0]
    response = web.get("/jobs")
    assert response.status_code == 200
    body = response.json()
    assert [j["name"] for j in body["jobs"]] == [
        "extract",
        "transform",
        "load",
        "report",
        "cleanup",
    ]
    assert body["groups"] == ["etl", "maintenance", "reports"]
    jobs = {j["name"]: j for j in body["jobs"]}
    transform = jobs["transform"]
    for field in ("name", "group", "description", "depends_on", "timeout_s", "params"):
        assert field in transform
    assert {j["isolation"] for j in body["jobs"]} == {"pool"}  # JOBSYS_ISOLATION's default
    assert transform["depends_on"] == ["extract"] and transform["timeout_s"] == 300
    assert jobs["report"]["params"]["day"] == {"type": "string", "required": True}
    assert jobs["extract"]["last_run"]["id"] == run_id
    assert jobs["extract"]["last_run"]["status"] == "QUEUED"
    assert jobs["extract"]["active"] == {"QUEUED": 1}
    assert jobs["load"]["last_run"] is None
    claimed = claim_runnable(
        web.engine, worker_id="daemon-1", limit=5, clock=web.clock.now, known_jobs=["extract"]
    )
    assert [c.run_id for c in claimed] == [run_id]
    running = {j["name"]: j for j in web.get("/jobs").json()["jobs"]}["extract"]
    assert running["running_run_id"] == run_id
    assert running["active"] == {"RUNNING": 1}


def test_run_job_with_params_validated_against_the_schema(web: Web, listener: WakeListener) -> None:
    response = web.post("/jobs/report/run", {"params": {"day": "2030-01-06"}})
    assert response.status_code == 202
    run_id = response.json()["job_run_ids"][0]
    assert woken(listener) >= 1
    run = web.get(f"/job-runs/{run_id}").json()
    assert run["params"] == {"day": "2030-01-06", "limit": 10}  # default filled in
    assert run["trigger"] == "MANUAL" and run["triggered_by"] == ADMIN
    audit = audit_rows(web.engine, "job.run")
    assert [(a.actor, a.target_id) for a in audit] == [(ADMIN, "report")]
    assert audit[0].after is not None and audit[0].after["params"]["day"] == "2030-01-06"

    for params, message in (
        ({}, "param 'day' is required"),
        ({"day": 5}, "param 'day': expected string, got int"),
        ({"day": "x", "limit": "ten"}, "param 'limit': expected integer"),
        ({"day": "x", "extra": 1}, "unknown param(s): extra"),
    ):
        bad = web.post("/jobs/report/run", {"params": params})
        assert bad.status_code == 422, params
        assert message in bad.json()["error"]["message"]
    not_object = web.post("/jobs/report/run", {"params": [1, 2]})
    assert not_object.status_code == 422
    assert web.post("/jobs/nope/run").status_code == 404
    # a job without declared params takes any JSON object
    free = web.post("/jobs/cleanup/run", {"params": {"deep": {"x": [1, None]}}})
    assert free.status_code == 202


def test_run_all_and_run_group(web: Web, listener: WakeListener) -> None:
    everything = web.post("/jobs/run-all", {})
    assert everything.status_code == 202
    assert len(everything.json()["job_run_ids"]) == 5
    assert woken(listener) >= 1
    group = web.post("/jobs/run-group/etl", {"skip_dependencies": True})
    assert group.status_code == 202
    batch = web.get(f"/batches/{group.json()['batch_id']}").json()
    assert batch["mode"] == "GROUP" and batch["job_group"] == "etl"
    assert batch["skip_dependencies"] is True
    assert all(r["depends_on"] == [] for r in batch["runs"])
    assert web.post("/jobs/run-group/nope", {}).status_code == 404
    actions = [(a.action, a.target_id) for a in audit_rows(web.engine) if a.action[:4] == "jobs"]
    assert actions == [("jobs.run_all", None), ("jobs.run_group", "etl")]


# -- runs, batches --------------------------------------------------------------------
def test_job_runs_filters_and_paging(web: Web) -> None:
    web.post("/jobs/run-all", {})  # runs 1-5
    web.post("/schedules/etl-hourly/trigger")  # runs 6-8
    web.post("/jobs/extract/run")  # run 9
    run_through(web, fail=frozenset({"extract"}))
    everything = web.get("/job-runs").json()
    assert [r["id"] for r in everything["runs"]] == list(range(9, 0, -1))
    assert everything["next_cursor"] is None
    first = web.get("/job-runs?limit=4").json()
    assert [r["id"] for r in first["runs"]] == [9, 8, 7, 6]
    assert first["next_cursor"] == 6
    second = web.get("/job-runs?limit=4&cursor=6").json()
    assert [r["id"] for r in second["runs"]] == [5, 4, 3, 2]

    def ids(query: str) -> list[int]:
        response = web.get(f"/job-runs?{query}")
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["runs"]]

    assert ids("job=extract") == [9, 6, 1]
    assert ids("schedule_id=etl-hourly") == [8, 7, 6]
    assert ids("batch_id=2") == [8, 7, 6]
    assert ids("trigger=MANUAL") == list(range(9, 0, -1))
    assert ids("trigger=CRON") == []
    assert set(ids("status=FAILED")) == {1, 6, 9}
    assert set(ids("status=skipped,failed")) == {1, 2, 3, 6, 7, 8, 9}
    assert ids("job=extract&status=FAILED&limit=1") == [9]
    assert ids("job=never-existed") == []
    for bad, name in (
        ("status=DONE", "status"),
        ("status=", None),
        ("trigger=SOMETIMES", "trigger"),
        ("batch_id=abc", "batch_id"),
        ("batch_id=0", "batch_id"),
        ("batch_id=99999999999999999999", "batch_id"),
        ("limit=500", "limit"),
        ("cursor=x", "cursor"),
        ("job=has space", "job"),
        ("schedule_id=" + "x" * 101, "schedule_id"),
    ):
        response = web.get(f"/job-runs?{bad}")
        if name is None:
            assert response.status_code == 200  # an empty value is no filter
            continue
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "bad_request"
        assert repr(name) in response.json()["error"]["message"]


def test_job_run_detail_with_logs_and_progress(web: Web) -> None:
    run_id = web.post("/jobs/extract/run").json()["job_run_ids"][0]
    claim_runnable(
        web.engine, worker_id="daemon-1", limit=1, clock=web.clock.now, known_jobs=["extract"]
    )
    append_logs(
        web.engine,
        run_id,
        [(web.clock.now(), "INFO", "starting"), (web.clock.now(), "WARNING", "slow disk")],
    )
    set_progress(web.engine, run_id, 3, 4, web.clock.now())
    response = web.get(f"/job-runs/{run_id}")
    assert response.status_code == 200
    run = response.json()
    for field in (
        "id",
        "job_name",
        "status",
        "trigger",
        "schedule_id",
        "batch_id",
        "scheduled_for",
        "params",
        "triggered_by",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "error",
    ):
        assert field in run, field
    assert run["status"] == "RUNNING"
    assert (run["progress_done"], run["progress_total"], run["progress_percent"]) == (3, 4, 75.0)
    assert [(line["level"], line["message"]) for line in run["logs"]] == [
        ("INFO", "starting"),
        ("WARNING", "slow disk"),
    ]
    assert run["queued_at"] == "2030-01-07T12:00:00Z"
    first_id = run["logs"][0]["id"]
    tail = web.get(f"/job-runs/{run_id}?logs_after={first_id}").json()["logs"]
    assert [line["message"] for line in tail] == ["slow disk"]
    for missing in ("999", "0", "abc", "-1", "1.5", "99999999999999999999999"):
        response = web.get(f"/job-runs/{missing}")
        assert response.status_code == 404, missing
        assert response.json()["error"]["code"] == "not_found"


def test_cancel_queued_and_running_runs(web: Web, listener: WakeListener) -> None:
    ids = web.post("/jobs/run-group/etl", {}).json()["job_run_ids"]
    claim_runnable(
        web.engine, worker_id="daemon-1", limit=5, clock=web.clock.now, known_jobs=["extract"]
    )
    listener.drain()
    running = web.post(f"/job-runs/{ids[0]}/cancel")
    assert running.status_code == 200
    assert running.json()["status"] == "RUNNING"  # its daemon stops it
    assert running.json()["cancel_requested"] is True
    assert woken(listener) >= 1
    queued = web.post(f"/job-runs/{ids[2]}/cancel")
    assert queued.status_code == 200
    assert queued.json()["status"] == "CANCELLED"
    again = web.post(f"/job-runs/{ids[2]}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert web.post("/job-runs/999/cancel").status_code == 404
    audit = audit_rows(web.engine, "run.cancel")
    asked = {"cancel_requested": True}
    assert [(a.actor, a.target_id, a.before, a.after) for a in audit] == [
        (ADMIN, str(ids[0]), {"status": "RUNNING"}, {"status": "RUNNING", **asked}),
        (ADMIN, str(ids[2]), {"status": "QUEUED"}, {"status": "CANCELLED", **asked}),
    ]


def test_batch_with_runs_in_dependency_order_and_timeline(web: Web) -> None:
    batch_id = web.post("/jobs/run-all", {}).json()["batch_id"]
    run_through(web)
    response = web.get(f"/batches/{batch_id}")
    assert response.status_code == 200
    batch = response.json()
    assert batch["status"] == "SUCCESS"
    names = [r["job_name"] for r in batch["runs"]]
    assert names.index("extract") < names.index("transform") < names.index("load")
    assert batch["counts"] == {"SUCCESS": 5}
    bars = {b["job_name"]: b for b in batch["timeline"]}
    assert bars["transform"]["start_ms"] >= bars["extract"]["end_ms"]
    assert all(b["duration_ms"] is not None for b in batch["timeline"])
    assert batch["created_at"] == iso_utc(T0)
    assert web.get("/batches/999").status_code == 404
    assert web.get("/batches/x").status_code == 404


# -- daemon status, audit -------------------------------------------------------------
def test_daemon_status_agrees_with_health(web: Web) -> None:
    from jobsys import health

    nobody = web.get("/daemon/status").json()
    assert nobody["daemon_running"] is False and nobody["health"] == "critical"
    assert nobody["workers"] == []
    workers.register(
        web.engine,
        worker_id="d1",
        hostname="host-a",
        pid=11,
        wake_host=None,
        wake_port=None,
        version="t",
        concurrency=1,
        now=web.clock.now(),
    )
    web.clock.advance(30)
    status = web.get("/daemon/status").json()
    report = health.evaluate(web.engine, web.clock.now())
    assert status["health"] == "healthy" == health.API_NAMES[report.status]
    assert status["daemon_running"] is True
    assert status["health_message"] == report.message
    (worker,) = status["workers"]
    assert (worker["id"], worker["hostname"], worker["pid"]) == ("d1", "host-a", 11)
    assert worker["last_heartbeat_at"] == "2030-01-07T12:00:00Z"
    web.clock.advance(150)
    assert web.get("/daemon/status").json()["health"] == "warning"
    web.clock.advance(400)
    late = web.get("/daemon/status").json()
    assert late["health"] == "critical" and late["daemon_running"] is False


def test_audit_filters_and_paging(web: Web) -> None:
    web.post("/schedules/nightly/enable")
    web.post("/schedules/nightly/disable")
    web.post("/jobs/extract/run")
    web.post("/schedules/etl-hourly/trigger", headers=web.admin)
    page = web.get("/audit?limit=2").json()
    assert [e["action"] for e in page["entries"]] == ["schedule.trigger", "job.run"]
    entry = page["entries"][0]
    assert set(entry) == {
        "id", "at", "actor", "action", "target_type", "target_id", "before", "after", "ip",
        "detail",
    }  # fmt: skip
    assert entry["at"] == "2030-01-07T12:00:00Z"
    rest = web.get(f"/audit?limit=2&cursor={page['next_cursor']}").json()
    assert [e["action"] for e in rest["entries"]] == ["schedule.disable", "schedule.enable"]

    def actions(query: str) -> list[str]:
        response = web.get(f"/audit?{query}")
        assert response.status_code == 200, response.text
        return [e["action"] for e in response.json()["entries"]]

    assert actions("target=nightly") == ["schedule.disable", "schedule.enable"]
    assert actions("action=job.run") == ["job.run"]
    assert actions("action=schedule.") == [
        "schedule.trigger",
        "schedule.disable",
        "schedule.enable",
    ]
    assert actions(f"actor={ADMIN}&action=schedule.enable") == ["schedule.enable"]
    assert actions("actor=cli") == ["token.create", "token.create", "admin.create", "admin.create"]
    assert actions("actor=nobody%25") == []
    assert web.get("/audit?actor=" + "x" * 300).status_code == 400
    assert web.get("/audit?limit=-3").status_code == 400


# -- the last resort ------------------------------------------------------------------
def test_a_bug_becomes_a_logged_json_500(
    web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from jobsys import health
    from tests.web_helpers import TestClient

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(health, "evaluate", broken)
    with TestClient(web.web, raise_server_exceptions=False) as client:
        response = client.get(f"{API}/daemon/status", headers=web.admin)
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal error (logged on the server)"}
    }
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


def test_database_outage_is_a_503(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from jobsys.web import api

    def down(*args: object, **kwargs: object) -> object:
        raise OperationalError("SELECT 1", {}, Exception("server has gone away"))

    monkeypatch.setattr(api, "schedule_views", down)
    response = web.get("/schedules")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"


def test_rows_touched_by_hand_keep_api_shapes(web: Web) -> None:
    """Columns the daemon fills (worker, exit code, error) come back as written."""
    run_id = web.post("/jobs/cleanup/run").json()["job_run_ids"][0]
    with write_engine(web.engine).begin() as conn:
        conn.execute(
            update(JobRun)
            .where(col(JobRun.id) == run_id)
            .values(status="FAILED", error="ValueError: x", exit_code=1, worker_id="w9")
        )
        conn.execute(update(JobSchedule).values(locked_by="w9"))
    append_logs(web.engine, run_id, [(T0, "ERROR", "x")])
    run = web.get(f"/job-runs/{run_id}").json()
    assert (run["status"], run["error"], run["exit_code"], run["worker_id"]) == (
        "FAILED",
        "ValueError: x",
        1,
        "w9",
    )
    assert run["logs"][0]["ts"] == "2030-01-07T12:00:00Z"
    assert web.get("/schedules/nightly").json()["locked_by"] == "w9"


def test_ui_files_are_served_from_the_ui_folder(
    web: Web, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobsys.web import pages
    from jobsys.web.app import create_app
    from tests.web_helpers import TestClient, settings_for

    (tmp_path / "index.html").write_text("<!doctype html><title>the real UI</title>")
    (tmp_path / "app.js").write_text("console.log('hi')")
    monkeypatch.setattr(pages, "resource_dir", lambda name: tmp_path)
    ui = create_app(
        settings=settings_for(web.engine), app=web.app, engine=web.engine, clock=web.clock
    )
    with TestClient(ui) as client:
        for path in ("/admin", "/admin/login", "/admin/runs/12"):
            page = client.get(path)
            assert page.status_code == 200 and "the real UI" in page.text
            assert page.headers["cache-control"] == "no-cache"
        script = client.get("/admin/static/app.js")
        assert script.status_code == 200 and "console.log" in script.text
        assert client.get("/admin/static/missing.js").status_code == 404
        assert client.get("/admin/static/../../etc/passwd").status_code == 404
