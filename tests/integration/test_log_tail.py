"""Long logs show their end (issue 12, item 10): a run with 10,001 stored lines (the
executor's cap plus its truncation note) through the store, the JSON API and
``jobs run --wait`` in a real child process, on SQLite and MariaDB."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy.engine import Engine

from jobsys.clock import SystemClock
from jobsys.loader import load_app
from jobsys.store.queries import LOG_TAIL_LINES, get_run, log_page
from jobsys.store.rows import LogLineRow
from jobsys.store.runs import append_logs, claim_runnable, finish_run
from jobsys.store.schedules import sync_definitions
from tests.process_helpers import ROOT, jobsys_env, wait_for
from tests.web_helpers import Web, web_harness

LINES = 10_001
NOTE = "log truncated: the run wrote more than 10000 lines; the rest is not stored"
TRACEBACK = "Traceback (most recent call last): RuntimeError: the end of a long run"


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch) as harness:
        yield harness


def message(n: int) -> str:
    """Line ``n`` (1-based): numbered lines, then the traceback and the truncation note."""
    if n == LINES:
        return NOTE
    if n == LINES - 1:
        return TRACEBACK
    return f"line {n}"


def act_as_daemon(engine: Engine, job: str, now: datetime, lines: int = LINES) -> int:
    """Claim the queued run of ``job``, store ``lines`` log lines and fail it."""
    (claimed,) = claim_runnable(
        engine, worker_id="daemon-1", limit=1, clock=lambda: now, known_jobs=[job]
    )
    append_logs(engine, claimed.run_id, [(now, "INFO", message(n)) for n in range(1, lines + 1)])
    finish_run(
        engine,
        claimed.run_id,
        worker_id="daemon-1",
        status="FAILED",
        error="RuntimeError: the end of a long run",
        exit_code=1,
        started_at=claimed.started_at,
        now=now,
    )
    return claimed.run_id


def messages(lines: list[dict[str, object]] | list[LogLineRow]) -> list[object]:
    return [line["message"] for line in lines]


def test_the_api_shows_the_end_of_a_long_log_and_pages_back(web: Web) -> None:
    web.post("/jobs/extract/run")
    run_id = act_as_daemon(web.engine, "extract", web.clock.now())

    run = web.get(f"/job-runs/{run_id}").json()
    assert (run["log_count"], run["logs_earlier"], run["logs_later"]) == (LINES, 9001, 0)
    assert len(run["logs"]) == LOG_TAIL_LINES == 1000
    assert messages(run["logs"])[0] == "line 9002"
    assert messages(run["logs"])[-2:] == [TRACEBACK, NOTE]

    # Page back to the start: every line once, in order.
    seen = messages(run["logs"])
    first_id, earlier = run["logs"][0]["id"], run["logs_earlier"]
    while earlier:
        page = web.get(f"/job-runs/{run_id}?logs_before={first_id}&logs_limit=5000").json()
        assert page["log_count"] == LINES
        assert page["logs_earlier"] == earlier - len(page["logs"])
        assert page["logs_later"] == LINES - earlier
        seen = messages(page["logs"]) + seen
        first_id, earlier = page["logs"][0]["id"], page["logs_earlier"]
    assert seen == [message(n) for n in range(1, LINES + 1)]

    # Tailing a running job still reads forward from an id, a page at a time.
    after = web.get(f"/job-runs/{run_id}?logs_before={first_id + 10}&logs_limit=1").json()
    assert messages(after["logs"]) == ["line 10"]
    ahead = web.get(f"/job-runs/{run_id}?logs_after={after['logs'][0]['id']}&logs_limit=5")
    assert messages(ahead.json()["logs"]) == [f"line {n}" for n in range(11, 16)]
    assert (ahead.json()["logs_earlier"], ahead.json()["logs_later"]) == (10, LINES - 15)
    last_id = run["logs"][-1]["id"]
    nothing = web.get(f"/job-runs/{run_id}?logs_after={last_id}").json()
    assert (nothing["logs"], nothing["logs_earlier"], nothing["logs_later"]) == ([], LINES, 0)


def test_log_paging_parameters_are_checked(web: Web) -> None:
    run_id = web.post("/jobs/extract/run").json()["job_run_ids"][0]
    empty = web.get(f"/job-runs/{run_id}").json()
    assert (empty["logs"], empty["log_count"], empty["logs_earlier"]) == ([], 0, 0)
    for query, name in (
        ("logs_limit=0", "logs_limit"),
        ("logs_limit=5001", "logs_limit"),
        ("logs_limit=x", "logs_limit"),
        ("logs_before=0", "logs_before"),
        ("logs_after=1&logs_before=5", "logs_after"),
    ):
        response = web.get(f"/job-runs/{run_id}?{query}")
        assert response.status_code == 400, query
        assert repr(name) in response.json()["error"]["message"], query


def test_get_run_returns_the_tail_and_the_count(engine: Engine, web: Web) -> None:
    web.post("/jobs/extract/run")
    run_id = act_as_daemon(engine, "extract", web.clock.now())
    run = get_run(engine, run_id)
    assert run["log_count"] == LINES
    assert len(run["logs"]) == 5000
    assert [line["message"] for line in run["logs"]][-2:] == [TRACEBACK, NOTE]
    middle = log_page(engine, run_id, before_id=10**12, limit=3)
    assert messages(middle.lines) == [f"line {LINES - 2}", TRACEBACK, NOTE]
    with pytest.raises(ValueError, match="not both"):
        log_page(engine, run_id, after_id=1, before_id=2)


def test_jobs_run_wait_prints_the_end_of_a_long_log(db_url: str, engine: Engine) -> None:
    """``jobs run --wait`` in a real child process; this test plays the daemon."""
    app = str(ROOT / "tests" / "apps" / "ui_app.py")
    sync_definitions(engine, load_app(app), "development", SystemClock().now())
    cli = subprocess.Popen(
        [sys.executable, "-m", "jobsys", "jobs", "run", "purge", "--wait", "--timeout", "60"],
        env=jobsys_env(db_url, JOBSYS_APP=app),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: claim_ready(engine), timeout=30)
        now = SystemClock().now()
        run_id = act_as_daemon(engine, "purge", now)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 1, out + err
    lines = out.splitlines()
    assert (
        f"(first 5001 of {LINES} log lines not shown; see them with "
        f"`jobsys runs show {run_id} --logs` or on the run page)"
    ) in lines
    assert lines[-3].endswith(TRACEBACK) and lines[-2].endswith(NOTE)
    assert lines[-1] == f"run {run_id} FAILED: RuntimeError: the end of a long run"
    assert not any(line.endswith(" line 5001") for line in lines)
    assert any(line.endswith(" line 5002") for line in lines)


def claim_ready(engine: Engine) -> bool:
    from sqlalchemy import func, select

    from jobsys.store.models import JobRun

    with engine.connect() as conn:
        return bool(conn.execute(select(func.count()).select_from(JobRun)).scalar_one())
