"""GET /api/admin/overview, POST /api/admin/batches/{id}/cancel and a queued run's
``waiting_reason`` on a real database (SQLite and MariaDB) through the real app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from jobsys.store import workers
from jobsys.store.runs import claim_runnable, finish_run
from tests.web_helpers import ADMIN, Web, audit_rows, web_harness


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def register_daemon(web: Web, concurrency: int = 2) -> None:
    workers.register(
        web.engine,
        worker_id="daemon-1",
        hostname="host-a",
        pid=4242,
        wake_host=None,
        wake_port=None,
        version="test",
        concurrency=concurrency,
        now=web.clock.now(),
    )


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
            failed = run.job_name in fail
            finish_run(
                web.engine,
                run.run_id,
                worker_id="daemon-1",
                status="FAILED" if failed else "SUCCESS",
                error="boom" if failed else None,
                exit_code=1 if failed else 0,
                started_at=run.started_at,
                now=web.clock.now(),
            )


def test_overview_of_an_empty_system(web: Web) -> None:
    response = web.get("/overview")
    assert response.status_code == 200
    body = response.json()
    assert body["generated_at"] == "2030-01-07T12:00:00Z"
    assert body["runs_now"] == {"queued": 0, "running": 0}
    assert len(body["hourly"]) == 7 * 24
    assert body["hourly"][-1]["hour"] == "2030-01-07T12:00:00Z"
    assert body["hourly"][0]["hour"] == "2029-12-31T13:00:00Z"
    empty = {"total": 0, "success": 0, "failed": 0, "cancelled": 0, "skipped": 0}
    assert body["windows"]["24h"] == {**empty, "success_rate": None}
    assert body["windows"]["7d"] == {**empty, "success_rate": None}
    assert body["failures"] == [] and body["overdue"] == []
    assert body["daemon"]["health"] == "critical"
    assert body["daemon"]["daemon_running"] is False


def test_overview_counts_outcomes_per_hour_and_lists_failures(web: Web) -> None:
    register_daemon(web)
    # etl: extract fails, so transform and load are skipped; cleanup succeeds.
    assert web.post("/jobs/run-group/etl").status_code == 202
    assert web.post("/jobs/cleanup/run").status_code == 202
    run_through(web, fail=frozenset({"extract"}))
    web.clock.advance(3 * 3600)
    assert web.post("/jobs/cleanup/run").status_code == 202
    run_through(web)
    queued = web.post("/jobs/report/run", {"params": {"day": "monday"}}).json()
    body = web.get("/overview").json()
    assert body["runs_now"] == {"queued": 1, "running": 0}
    day = body["windows"]["24h"]
    assert (day["success"], day["failed"], day["skipped"]) == (2, 1, 2)
    assert day["total"] == 5
    assert day["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert body["windows"]["7d"]["total"] == 5
    # the hour buckets: 12:00 holds the first round, 15:00 the second cleanup
    by_hour = {h["hour"]: h for h in body["hourly"] if any(h[k] for k in h if k != "hour")}
    assert by_hour["2030-01-07T12:00:00Z"]["failed"] == 1
    assert by_hour["2030-01-07T12:00:00Z"]["skipped"] == 2
    assert by_hour["2030-01-07T15:00:00Z"]["success"] == 1
    [failure] = body["failures"]
    assert failure["job_name"] == "extract" and failure["error"] == "boom"
    assert failure["retried_as"] is None
    # a retry from the list is the existing retry route; the failure then names it
    retried = web.post(f"/job-runs/{failure['id']}/retry")
    assert retried.status_code == 202
    again = web.get("/overview").json()["failures"][0]
    assert again["retried_as"] == retried.json()["job_run_ids"][0]
    assert queued["job_run_ids"]


def test_overview_old_runs_leave_the_window(web: Web) -> None:
    register_daemon(web)
    web.post("/jobs/cleanup/run")
    run_through(web)
    web.clock.advance(8 * 24 * 3600)
    body = web.get("/overview").json()
    assert body["windows"]["7d"]["total"] == 0


def test_overview_lists_overdue_schedules_with_the_reason(web: Web) -> None:
    assert web.post("/schedules/nightly/enable").status_code == 200  # next: 2030-01-08 02:00
    web.clock.advance(14 * 3600 + 90)  # 02:01:30, grace 60 s, no daemon at all
    body = web.get("/overview").json()
    [late] = body["overdue"]
    assert late["id"] == "nightly" and late["name"] == "Nightly"
    assert late["next_run_at"] == "2030-01-08T02:00:00Z"
    assert late["overdue_s"] == 90 and late["grace_s"] == 60
    assert late["reason"] == "no daemon is running"
    register_daemon(web)
    body = web.get("/overview").json()
    assert "grace" in body["overdue"][0]["reason"]


def test_viewer_reads_the_overview_but_cannot_cancel_a_batch(web: Web) -> None:
    assert web.get("/overview", headers=web.viewer).status_code == 200
    created = web.post("/jobs/run-group/etl").json()
    refused = web.post(f"/batches/{created['batch_id']}/cancel", headers=web.viewer)
    assert refused.status_code == 403
    assert web.client.get("/api/admin/overview").status_code == 401


def test_cancel_a_whole_batch(web: Web) -> None:
    register_daemon(web)
    created = web.post("/jobs/run-group/etl").json()
    batch_id = created["batch_id"]
    claim_runnable(
        web.engine, worker_id="daemon-1", limit=10, clock=web.clock.now, known_jobs=["extract"]
    )  # extract RUNNING, transform and load QUEUED
    response = web.post(f"/batches/{batch_id}/cancel")
    assert response.status_code == 200, response.text
    runs = {r["job_name"]: r for r in response.json()["runs"]}
    assert runs["extract"]["status"] == "RUNNING" and runs["extract"]["cancel_requested"]
    assert runs["transform"]["status"] == "CANCELLED"
    assert runs["load"]["status"] == "CANCELLED"
    [row] = audit_rows(web.engine, "batch.cancel")
    assert (row.actor, row.target_type, row.target_id) == (ADMIN, "batch", str(batch_id))
    assert row.after == {"cancel_requested": sorted(created["job_run_ids"])}
    # the running one is flagged: a second cancel still has it active, so it is accepted
    assert web.post(f"/batches/{batch_id}/cancel").status_code == 200


def test_cancel_batch_bad_input(web: Web) -> None:
    missing = web.post("/batches/999999/cancel")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "unknown batch 999999"
    for bad in ("abc", "0", "-1"):
        assert web.post(f"/batches/{bad}/cancel").status_code in (404, 422), bad
    assert web.post("/batches/1/cancel", {"force": True}).status_code in (404, 422)
    register_daemon(web)
    created = web.post("/jobs/cleanup/run").json()
    run_through(web)
    done = web.post(f"/batches/{created['batch_id']}/cancel")
    assert done.status_code == 409
    assert "no queued or running run" in done.json()["error"]["message"]


def test_waiting_reason_of_queued_runs(web: Web) -> None:
    created = web.post("/jobs/run-group/etl").json()
    extract, transform, _load = created["job_run_ids"]
    assert "no daemon is alive" in web.get(f"/job-runs/{extract}").json()["waiting_reason"]
    assert (
        web.get(f"/job-runs/{transform}").json()["waiting_reason"]
        == f"waiting for dependency extract (run #{extract}, QUEUED)"
    )
    register_daemon(web, concurrency=1)
    second = web.post("/jobs/extract/run").json()["job_run_ids"][0]
    assert web.get(f"/job-runs/{second}").json()["waiting_reason"] == (
        f"behind run #{extract} of the same job (one run of a job at a time)"
    )
    cleanup = web.post("/jobs/cleanup/run").json()["job_run_ids"][0]
    assert web.get(f"/job-runs/{cleanup}").json()["waiting_reason"].startswith("about to start")
    claim_runnable(
        web.engine, worker_id="daemon-1", limit=1, clock=web.clock.now, known_jobs=["extract"]
    )
    assert web.get(f"/job-runs/{cleanup}").json()["waiting_reason"] == (
        "all workers are busy (1 running, 1 slots)"
    )
    assert web.get(f"/job-runs/{second}").json()["waiting_reason"] == (
        f"behind run #{extract} of the same job (one run of a job at a time)"
    )
    assert web.get(f"/job-runs/{extract}").json()["waiting_reason"] is None


def test_closed_hours_are_cached_and_the_open_ones_read_fresh(web: Web) -> None:
    """The per-process cache of closed hours gives the answer a fresh read gives."""
    from jobsys.store.overview import HourlyCache, read_overview

    register_daemon(web)
    for _ in range(3):
        web.post("/jobs/cleanup/run")
        run_through(web)
        web.clock.advance(2 * 3600)
    cache = HourlyCache()

    def counts(use: HourlyCache | None) -> dict[tuple[str, str], int]:
        got = read_overview(web.engine, web.clock.now(), cache=use)
        return {(c.hour.isoformat(), c.status): c.count for c in got.hourly}

    first = counts(cache)
    assert sum(first.values()) == 3
    assert cache.closed_until is not None and cache.counts
    web.post("/jobs/cleanup/run")  # finishes in the open hour: read fresh
    run_through(web)
    assert counts(cache) == counts(None)
    assert sum(counts(cache).values()) == 4
    web.clock.advance(8 * 24 * 3600)  # everything leaves the window, cache included
    assert counts(cache) == {} == counts(None)
    # the endpoint keeps one cache: two calls agree
    assert web.get("/overview").json() == web.get("/overview").json()
