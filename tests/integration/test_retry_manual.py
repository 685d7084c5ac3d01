"""Manual retries: **Retry** of a run and **Re-run failed** of a batch, through the API
(admin only, audited, documented errors) and the CLI (real ``jobsys`` processes), on
both backends. The store helpers stand in for a daemon: a run is claimed and FAILED."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy.engine import Engine

from jobsys.clock import SystemClock
from jobsys.loader import load_app
from jobsys.manual import create_manual_batch
from jobsys.store.queries import get_batch, get_run
from jobsys.store.runs import claim_runnable, finish_run
from jobsys.store.schedules import sync_definitions
from tests.process_helpers import ROOT, run_cli
from tests.web_helpers import Web, audit_rows, web_harness


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def fail(engine: Engine, job: str, now: datetime, known: list[str]) -> int:
    """Claim the queued run of ``job`` as "daemon-1" and record it FAILED."""
    (claimed,) = [
        c
        for c in claim_runnable(
            engine, worker_id="daemon-1", limit=10, clock=lambda: now, known_jobs=known
        )
        if c.job_name == job
    ]
    assert finish_run(
        engine,
        claimed.run_id,
        worker_id="daemon-1",
        status="FAILED",
        error="boom",
        exit_code=1,
        started_at=now,
        now=now,
    )
    return claimed.run_id


def failed_etl_batch(web: Web) -> tuple[int, dict[str, int]]:
    """A run-all batch whose ``extract`` failed: its dependents were skipped."""
    created = web.post("/jobs/run-group/etl").json()
    fail(web.engine, "extract", web.clock.now(), list(web.app.jobs))
    batch = get_batch(web.engine, created["batch_id"])
    assert batch["status"] == "FAILED"
    return created["batch_id"], {r["job_name"]: r["id"] for r in batch["runs"]}


def test_retry_a_failed_run_over_the_api(web: Web) -> None:
    batch_id, ids = failed_etl_batch(web)
    assert web.post(f"/job-runs/{ids['extract']}/retry", headers=web.viewer).status_code == 403
    answer = web.post(f"/job-runs/{ids['extract']}/retry")
    assert answer.status_code == 202, answer.text
    (new_id,) = answer.json()["job_run_ids"]
    new = get_run(web.engine, new_id, with_logs=False)
    assert (new["job_name"], new["status"], new["attempt"], new["retry_of"]) == (
        "extract",
        "QUEUED",
        2,
        ids["extract"],
    )
    batch = web.get(f"/batches/{answer.json()['batch_id']}").json()
    assert batch["rerun_of"] == batch_id and batch["mode"] == "JOB"
    assert [bar["attempt"] for bar in batch["timeline"]] == [2]
    detail = web.get(f"/job-runs/{new_id}").json()
    assert [(a["id"], a["attempt"]) for a in detail["attempts"]] == [
        (ids["extract"], 1),
        (new_id, 2),
    ]
    (row,) = audit_rows(web.engine, "run.retry")
    assert row.target_id == str(ids["extract"]) and row.actor == "admin@example.com"
    assert row.after == {"batch_id": batch["id"], "job_run_id": new_id}
    # a skipped run, a queued one and an unknown one cannot be retried
    skipped = web.post(f"/job-runs/{ids['transform']}/retry")
    assert skipped.status_code == 409 and "only a failed or cancelled run" in skipped.text
    assert web.post(f"/job-runs/{new_id}/retry").status_code == 409
    assert web.post("/job-runs/999999/retry").status_code == 404


def test_rerun_failed_over_the_api(web: Web) -> None:
    batch_id, ids = failed_etl_batch(web)
    assert web.post(f"/batches/{batch_id}/rerun", headers=web.viewer).status_code == 403
    answer = web.post(f"/batches/{batch_id}/rerun")
    assert answer.status_code == 202, answer.text
    new = web.get(f"/batches/{answer.json()['batch_id']}").json()
    assert new["rerun_of"] == batch_id and new["status"] == "QUEUED"
    assert [(r["job_name"], r["depends_on"], r["attempt"]) for r in new["runs"]] == [
        ("extract", [], 2),
        ("transform", ["extract"], 2),
        ("load", ["transform"], 2),
    ]
    assert [r["retry_of"] for r in new["runs"]] == [ids["extract"], ids["transform"], ids["load"]]
    (row,) = audit_rows(web.engine, "batch.rerun")
    assert row.target_id == str(batch_id) and row.after == {"batch_id": new["id"], "runs": 3}
    # still running: 409; unknown: 404
    busy = web.post(f"/batches/{new['id']}/rerun")
    assert busy.status_code == 409 and "once it has finished" in busy.text
    assert web.post("/batches/999999/rerun").status_code == 404


def test_rerun_keeps_only_the_failed_part_and_drops_succeeded_dependencies(web: Web) -> None:
    created = web.post("/jobs/run-group/etl").json()
    now = web.clock.now()
    known = list(web.app.jobs)
    (extract,) = claim_runnable(
        web.engine, worker_id="daemon-1", limit=1, clock=lambda: now, known_jobs=known
    )
    assert finish_run(
        web.engine,
        extract.run_id,
        worker_id="daemon-1",
        status="SUCCESS",
        error=None,
        exit_code=0,
        started_at=now,
        now=now,
    )
    fail(web.engine, "transform", now, known)
    answer = web.post(f"/batches/{created['batch_id']}/rerun")
    new = get_batch(web.engine, answer.json()["batch_id"])
    assert [(r["job_name"], r["depends_on"]) for r in new["runs"]] == [
        ("transform", []),
        ("load", ["transform"]),
    ]
    # a successful batch has nothing to re-run
    ok = web.post("/jobs/run-group/maintenance").json()
    claimed = claim_runnable(
        web.engine, worker_id="daemon-1", limit=5, clock=lambda: now, known_jobs=known
    )
    for c in claimed:
        finish_run(
            web.engine,
            c.run_id,
            worker_id="daemon-1",
            status="SUCCESS",
            error=None,
            exit_code=0,
            started_at=now,
            now=now,
        )
    nothing = web.post(f"/batches/{ok['batch_id']}/rerun")
    assert nothing.status_code == 409 and "no failed, cancelled or skipped runs" in nothing.text


APP = str(ROOT / "tests" / "apps" / "isolation_app.py")


def test_cli_retry_and_rerun(db_url: str, engine: Engine) -> None:
    app = load_app(APP)
    now = SystemClock().now()
    sync_definitions(engine, app, "development", now)  # the job mutexes' rows
    created = create_manual_batch(engine, app, mode="JOB", job="raises", now=now, actor="t")
    run_id = fail(engine, "raises", now, list(app.jobs))

    retried = run_cli(["jobs", "retry", str(run_id)], db_url, JOBSYS_APP=APP)
    assert retried.returncode == 0, retried.stderr
    new = get_batch(engine, created.batch_id + 1)
    assert new["rerun_of"] == created.batch_id
    (new_run,) = new["runs"]
    assert f"run {run_id} retried as run {new_run['id']}" in retried.stdout
    assert new_run["attempt"] == 2 and new_run["retry_of"] == run_id
    (row,) = audit_rows_of(engine, "run.retry")
    assert row == ("cli", str(run_id))

    again = run_cli(["jobs", "retry", str(new_run["id"])], db_url, JOBSYS_APP=APP)
    assert again.returncode == 1 and "only a failed or cancelled run" in again.stderr
    missing = run_cli(["jobs", "retry", "999999"], db_url, JOBSYS_APP=APP)
    assert missing.returncode == 2 and "unknown job run 999999" in missing.stderr
    bad = run_cli(["jobs", "retry", "x"], db_url, JOBSYS_APP=APP)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr

    rerun = run_cli(["batches", "rerun", str(created.batch_id)], db_url, JOBSYS_APP=APP)
    assert rerun.returncode == 0, rerun.stderr
    assert f"batch {created.batch_id} re-run as batch" in rerun.stdout
    assert audit_rows_of(engine, "batch.rerun") == [("cli", str(created.batch_id))]
    busy = run_cli(["batches", "rerun", str(new["id"])], db_url, JOBSYS_APP=APP)
    assert busy.returncode == 1 and "once it has finished" in busy.stderr
    missing = run_cli(["batches", "rerun", "999999"], db_url, JOBSYS_APP=APP)
    assert missing.returncode == 2 and "unknown batch 999999" in missing.stderr


def audit_rows_of(engine: Engine, action: str) -> list[tuple[str | None, str | None]]:
    return [(r.actor, r.target_id) for r in audit_rows(engine, action)]
