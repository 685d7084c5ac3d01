"""Observability: ``GET /metrics`` (authenticated, Prometheus text format 0.0.4, parsed with
prometheus_client) follows runs, slots and daemons; and the daemon's JSON logs carry the
schedule, batch, run and job of each line about them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.metrics import CONTENT_TYPE, Family, render
from jobsys.store.models import JobSchedule
from tests.daemon_helpers import close_daemons, make_daemon, settle
from tests.process_helpers import ROOT, daemon_process, wait_for
from tests.web_helpers import ADMIN, PASSWORD, Web, login, web_harness

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def _close_daemons() -> Iterator[None]:
    yield
    close_daemons()


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def scrape(w: Web, headers: dict[str, str] | None = None) -> Samples:
    response = w.client.get("/metrics", headers=headers or w.viewer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    assert response.headers["cache-control"] == "no-store"
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_a_token_or_a_session(web: Web) -> None:
    anonymous = web.client.get("/metrics")
    assert anonymous.status_code == 401
    assert "authentication" in anonymous.text.lower() or "log in" in anonymous.text.lower()
    bad = web.client.get("/metrics", headers={"Authorization": "Bearer jbs_nope"})
    assert bad.status_code == 401
    assert "jobsys_health_status" in web.client.get("/metrics", headers=web.viewer).text
    browser = web.new_client()
    login(browser, ADMIN, PASSWORD)
    assert browser.get("/metrics").status_code == 200


def test_metrics_follow_runs_slots_and_daemons(web: Web) -> None:
    empty = scrape(web)
    assert value(empty, "jobsys_job_runs_queued") == 0
    assert value(empty, "jobsys_daemons_alive") == 0
    assert value(empty, "jobsys_health_status") == 2  # CRITICAL: no daemon
    assert not [k for k in empty if k[0] == "jobsys_job_runs_total"]

    # Run all (five jobs): queued until a daemon takes them
    assert web.post("/jobs/run-all", {}).status_code == 202
    queued = scrape(web)
    assert value(queued, "jobsys_job_runs_queued") == 5
    assert value(queued, "jobsys_job_runs_running") == 0

    daemon = make_daemon(web.engine, web.app, web.clock)
    settle(daemon)
    web.clock.advance(30)
    after = scrape(web)
    assert value(after, "jobsys_job_runs_queued") == 0
    assert value(after, "jobsys_job_runs_total", job="extract", status="SUCCESS") == 1
    report_runs = [
        v
        for (n, labels), v in after.items()
        if n == "jobsys_job_runs_total" and ("job", "report") in labels
    ]
    assert report_runs == [1]  # one run, whatever its outcome (it has a required param)
    assert value(after, "jobsys_job_run_duration_seconds_count", job="extract") == 1
    assert value(after, "jobsys_job_run_duration_seconds_bucket", job="extract", le="+Inf") == 1
    assert value(after, "jobsys_daemons_alive") == 1
    assert value(after, "jobsys_daemon_heartbeat_age_seconds", worker=daemon.worker_id) == 30
    assert value(after, "jobsys_health_status") == 0

    # the counters grow with each run
    assert web.post("/jobs/extract/run", {}).status_code == 202
    settle(daemon)
    again = scrape(web)
    assert value(again, "jobsys_job_runs_total", job="extract", status="SUCCESS") == 2
    assert value(again, "jobsys_job_runs_total", job="load", status="SUCCESS") == 1

    # a cron slot fires 250 ms late; the next one is missed
    assert web.post("/schedules/nightly/enable").status_code == 200
    assert value(scrape(web), "jobsys_schedules_enabled") == 1
    slot = datetime(2030, 1, 8, 2, 0, tzinfo=UTC)
    web.clock.set(slot + timedelta(milliseconds=250))
    settle(daemon)
    fired = scrape(web)
    assert value(fired, "jobsys_firing_lateness_seconds_count", schedule="nightly") == 1
    assert value(fired, "jobsys_firing_lateness_seconds_sum", schedule="nightly") == 0.25
    assert value(fired, "jobsys_firing_lateness_seconds_bucket", schedule="nightly", le="0.1") == 0
    assert value(fired, "jobsys_firing_lateness_seconds_bucket", schedule="nightly", le="0.25") == 1
    assert value(fired, "jobsys_job_runs_total", job="extract", status="SUCCESS") == 3
    web.clock.set(slot + timedelta(days=1, minutes=5))  # past the grace of the next slot
    settle(daemon)
    missed = scrape(web)
    assert value(missed, "jobsys_slots_skipped_total", schedule="nightly", reason="missed") == 1
    # the histograms cover 24 hours: the firing of a day ago has left them; counters stay
    assert value(missed, "jobsys_firing_lateness_seconds_count", schedule="nightly") == 0
    assert value(missed, "jobsys_job_run_duration_seconds_count", job="extract") == 0
    assert value(missed, "jobsys_job_runs_total", job="extract", status="SUCCESS") == 3


def test_render_escapes_and_formats() -> None:
    counter = Family("x_total", "counter", 'Help with a \\ and\na newline "quoted".')
    counter.add(3, job='we"ird\\name\nline', status="SUCCESS")
    gauge = Family("y", "gauge", "A gauge.")
    gauge.add(0.5)
    gauge.add(float("inf"), kind="inf")
    text = render([counter, gauge])
    assert text.endswith("\n")
    assert "# TYPE x_total counter\n" in text
    # prometheus_client writes values as Go floats ("3.0"); parsers read "3" the same
    assert 'x_total{job="we\\"ird\\\\name\\nline",status="SUCCESS"} 3.0\n' in text
    assert 'y{kind="inf"} +Inf\n' in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = families["x"].samples  # prometheus_client drops a counter's _total
    assert sample.labels["job"] == 'we"ird\\name\nline'
    assert sample.value == 3
    assert families["y"].samples[0].value == 0.5


# -- structured logs ------------------------------------------------------------------
OPS_APP = str(ROOT / "tests" / "apps" / "ops_app.py")


def test_daemon_json_logs_carry_schedule_batch_run_and_job(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    from jobsys.loader import load_app
    from jobsys.store.schedules import set_enabled, sync_definitions

    app = load_app(OPS_APP)
    # Away from a minute boundary, so that no slot comes due by itself meanwhile.
    wait_for(lambda: datetime.now(UTC).second <= 45, timeout=20, interval=0.2)
    now = datetime.now(UTC)
    sync_definitions(engine, app, "development", now)
    set_enabled(engine, app, "development", "every-minute", True, now=now, actor="test")
    # Pretend the daemons were away: three slots are missed, the current one fires.
    current = now.replace(second=0, microsecond=0)
    with engine.begin() as conn:
        conn.execute(
            update(JobSchedule)
            .where(col(JobSchedule.id) == "every-minute")
            .values(next_run_at=current - timedelta(minutes=3))
        )
    # DEBUG: a successful run's line is logged only at that level.
    with daemon_process(
        db_url,
        tmp_path,
        engine,
        JOBSYS_APP=OPS_APP,
        JOBSYS_LOG_FORMAT="json",
        JOBSYS_LOG_LEVEL="DEBUG",
    ) as daemon:
        wait_for(lambda: daemon.log().count(" SUCCESS") >= 2, timeout=30)
    lines = [line for line in daemon.log().splitlines() if line.strip()]
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line is JSON
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)

    fired = [r for r in records if r["message"].startswith("fired slot")]
    assert len(fired) == 1
    assert fired[0]["schedule_id"] == "every-minute"
    assert isinstance(fired[0]["batch_id"], int)
    assert fired[0]["slot"].startswith(current.isoformat()[:16])
    missed = [r for r in records if "recorded as missed" in r["message"]]
    assert len(missed) == 1 and missed[0]["schedule_id"] == "every-minute"
    assert missed[0]["message"].startswith("3 slot(s)")

    run_lines = [r for r in records if r["message"].startswith("run ")]
    assert {r["job"] for r in run_lines} == {"tick", "tock"}
    for r in run_lines:
        assert r["schedule_id"] == "every-minute"
        assert r["batch_id"] == fired[0]["batch_id"]
        assert isinstance(r["run_id"], int)
        assert r["message"].startswith(f"run {r['run_id']} ")
    assert sum(1 for r in run_lines if r["message"].endswith("SUCCESS")) == 2
