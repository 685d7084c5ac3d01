"""Admin writes under load (issue 12, item 7): a real ``jobsys web`` process (and real
daemons) over HTTP, with 1,000 schedules defined.

- enabling a schedule no longer re-syncs every definition (that cost ~1 s a request);
- on SQLite the web's writers take turns for a process-wide lock instead of racing in
  SQLite's busy handler, so Run Now under load answers 202, never 503.
"""

from __future__ import annotations

import collections
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.clock import SystemClock
from jobsys.store import db, users
from jobsys.store.models import JobSchedule
from tests.process_helpers import ROOT, daemon_process
from tests.system.test_web_process import web_process

APP = str(ROOT / "tests" / "apps" / "thousand_schedules_app.py")
API = "/api/admin"


def _token(engine: Engine) -> dict[str, str]:
    now = SystemClock().now()
    users.create_user(engine, "ops@example.org", "s3cret-enough", "admin", now=now)
    return {"Authorization": f"Bearer {users.create_token(engine, 'ops@example.org', now=now)}"}


def _row(engine: Engine, schedule_id: str) -> JobSchedule:
    with engine.connect() as conn:
        row = conn.execute(select(JobSchedule).where(col(JobSchedule.id) == schedule_id)).one()
    return row  # type: ignore[return-value]


def test_enable_does_not_resync_every_definition(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    bearer = _token(engine)
    with (
        web_process(db_url, tmp_path, JOBSYS_APP=APP) as (_proc, url),
        httpx.Client(base_url=url, headers=bearer, timeout=60) as client,
    ):
        # Another schedule's row drifts from its code after start-up (as if an older
        # process wrote it): enabling s_0000 must not rewrite it.
        stamp = datetime(2001, 1, 1, tzinfo=UTC)
        with db.write_engine(engine).begin() as conn:
            conn.execute(
                update(JobSchedule)
                .where(col(JobSchedule.id) == "s_0999")
                .values(description="drifted", updated_at=stamp)
            )
        took = []
        for i in range(20):
            started = time.perf_counter()
            response = client.post(f"{API}/schedules/s_{i:04d}/enable")
            took.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert response.json()["enabled"] is True
        drifted = _row(engine, "s_0999")
        assert drifted.description == "drifted"
        assert drifted.updated_at.replace(tzinfo=UTC) == stamp
        # one schedule's enable is cheap: was ~1 s with a sync of all 1,000 per request
        assert statistics.median(took) < 0.25, took

        # a schedule whose own row lags its code is still synced before it is enabled
        with db.write_engine(engine).begin() as conn:
            conn.execute(
                update(JobSchedule)
                .where(col(JobSchedule.id) == "s_0500")
                .values(cron="5 5 * * *", description="stale")
            )
        enabled = client.post(f"{API}/schedules/s_0500/enable")
        assert enabled.status_code == 200
        assert enabled.json()["cron"] == "0 0 1 1 *"
        assert enabled.json()["next_run_at"].startswith(f"{datetime.now(UTC).year + 1}-01-01")
        assert _row(engine, "s_0500").cron == "0 0 1 1 *"


@pytest.mark.slow
def test_run_now_under_load_with_two_daemons_never_answers_503(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(sqlite_url)
    try:
        bearer = _token(engine)
    finally:
        engine.dispose()
    codes: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()

    def client_thread(ids: list[int], url: str) -> None:
        with httpx.Client(base_url=url, headers=bearer, timeout=120) as client:
            for i in ids:
                status = client.post(f"{API}/schedules/s_{i:04d}/trigger").status_code
                with lock:
                    codes[status] += 1

    with (
        web_process(sqlite_url, tmp_path, JOBSYS_APP=APP) as (_proc, url),
        daemon_process(sqlite_url, tmp_path, name="d1", JOBSYS_APP=APP),
        daemon_process(sqlite_url, tmp_path, name="d2", JOBSYS_APP=APP),
        ThreadPoolExecutor(16) as pool,
    ):
        time.sleep(2)  # the daemons register and start taking work
        futures = [pool.submit(client_thread, list(range(t, 400, 16)), url) for t in range(16)]
        for future in futures:
            future.result()
    assert codes == {202: 400}, codes


def test_writers_in_one_process_take_turns_instead_of_failing(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that meets another one of the same process waits for it, however long it
    takes, instead of failing once SQLite's busy timeout runs out."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 100)
    engine = db.make_engine(sqlite_url)
    db.serialize_sqlite_writes(engine)
    now = SystemClock().now()
    errors: list[BaseException] = []
    holding = threading.Event()

    def slow_writer() -> None:
        with db.write_engine(engine).begin() as conn:
            conn.execute(update(JobSchedule).values(updated_at=now))
            holding.set()
            time.sleep(0.6)  # well past the 100 ms busy timeout

    def other_writer(n: int) -> None:
        try:
            holding.wait(5)
            if n % 2:
                users.create_user(engine, f"u{n}@example.org", "s3cret-enough", "viewer", now=now)
            else:
                with db.write_engine(engine).begin() as conn:  # BEGIN IMMEDIATE
                    conn.execute(update(JobSchedule).values(updated_at=now))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=slow_writer)] + [
            threading.Thread(target=other_writer, args=(n,)) for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
    finally:
        engine.dispose()
