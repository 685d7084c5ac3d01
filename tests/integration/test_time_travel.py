"""Time travel at the edges, where code reads the wall clock (design card: freezegun).

The daemon takes an injected clock; the CLI, ``health`` and the web read the real one
(``SystemClock``). These tests freeze and move that real clock with freezegun across
cron boundaries, a daylight-saving change, the health thresholds and the lease window,
and check what a person would see: ``cron next`` without ``--after``, ``health``'s exit
code, the web's daemon status and overdue list, and which daemons the CLI wakes.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys import cli
from jobsys.clock import SystemClock
from jobsys.store import users
from jobsys.store.db import make_engine
from jobsys.store.models import JobSchedule
from jobsys.store.schedules import set_enabled, sync_definitions
from jobsys.store.workers import register
from jobsys.web.app import create_app
from tests.web_helpers import API, TestClient, cheap_hashing, make_app, settings_for

T = datetime(2027, 11, 6, 12, 0, 0, tzinfo=UTC)


def run_cli(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str] | None = None
) -> tuple[int, str]:
    code = cli.main(argv, environ=env or {})
    out = capsys.readouterr()
    return code, out.out + out.err


# -- cron next without --after -------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "expr", "expected"),
    [
        # New York falls back on 2027-11-07: 01:30 happens twice, fires at the first.
        (
            "2027-11-06T12:00:00Z",
            "30 1 * * *",
            ["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"],
        ),
        # Springs forward on 2027-03-14: 02:30 does not exist, fires right after the gap.
        (
            "2027-03-13T12:00:00Z",
            "30 2 * * *",
            ["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z"],
        ),
        # Exactly on a slot: that slot is not "next" any more.
        (
            "2027-06-01T14:00:00Z",
            "0 10 * * *",
            ["2027-06-02T14:00:00Z", "2027-06-03T14:00:00Z"],
        ),
        # One second before a slot: it is next.
        (
            "2027-06-01T13:59:59Z",
            "0 10 * * *",
            ["2027-06-01T14:00:00Z", "2027-06-02T14:00:00Z"],
        ),
    ],
)
def test_cron_next_counts_from_the_wall_clock(
    capsys: pytest.CaptureFixture[str], now: str, expr: str, expected: list[str]
) -> None:
    argv = ["cron", "next", expr, "--tz", "America/New_York", "--count", "2", "--json"]
    with freeze_time(now):
        code, out = run_cli(capsys, argv)
    assert code == 0, out
    assert json.loads(out) == expected
    # The same as asking with --after at that instant.
    code, out = run_cli(capsys, [*argv, "--after", now])
    assert json.loads(out) == expected


def test_cron_next_moves_on_as_the_clock_passes_a_slot(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cron", "next", "*/15 * * * *", "--count", "1", "--json"]
    with freeze_time("2027-06-01T10:14:59Z") as frozen:
        assert json.loads(run_cli(capsys, argv)[1]) == ["2027-06-01T10:15:00Z"]
        frozen.tick(timedelta(seconds=1))
        assert json.loads(run_cli(capsys, argv)[1]) == ["2027-06-01T10:30:00Z"]


# -- a database with one daemon that heartbeated at T ----------------------------------------
@pytest.fixture
def db(db_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(db_url)
    try:
        yield db_url, engine
    finally:
        engine.dispose()


def add_daemon(engine: Engine, at: datetime, wake_port: int | None = None) -> None:
    register(
        engine,
        worker_id="d1",
        hostname="host-a",
        pid=4242,
        wake_host="127.0.0.1" if wake_port else None,
        wake_port=wake_port,
        version="test",
        concurrency=4,
        now=at,
    )


def health(capsys: pytest.CaptureFixture[str], url: str) -> tuple[int, dict[str, object]]:
    code, out = run_cli(capsys, ["health", "--json"], {"DATABASE_URL": url})
    report: dict[str, object] = json.loads(out)
    return code, report


def test_health_crosses_its_thresholds_as_the_clock_moves(
    capsys: pytest.CaptureFixture[str], db: tuple[str, Engine]
) -> None:
    url, engine = db
    add_daemon(engine, T)
    with freeze_time(T + timedelta(seconds=30)) as frozen:
        assert health(capsys, url)[0] == 0
        frozen.move_to(T + timedelta(seconds=120))  # warn after 120 s: not yet
        assert health(capsys, url)[0] == 0
        frozen.move_to(T + timedelta(seconds=121))
        code, report = health(capsys, url)
        assert code == 1, report
        assert "121s old" in str(report)
        frozen.move_to(T + timedelta(seconds=300))  # critical after 300 s: not yet
        assert health(capsys, url)[0] == 1
        frozen.move_to(T + timedelta(seconds=301))
        code, report = health(capsys, url)
        assert code == 2, report
        assert "no daemon heartbeat for 301s" in str(report)


def test_health_warns_when_a_schedule_passes_its_slot_and_grace(
    capsys: pytest.CaptureFixture[str], db: tuple[str, Engine]
) -> None:
    """The nightly 02:00 schedule is due at 02:00; with its 60 s grace it is overdue
    from 02:01:01 on, as long as no daemon has fired it."""
    url, engine = db
    app = make_app()
    slot = datetime(2027, 11, 7, 2, 0, tzinfo=UTC)
    sync_definitions(engine, app, "development", slot - timedelta(hours=1), mark_removed=False)
    set_enabled(
        engine, app, "development", "nightly", True, now=slot - timedelta(hours=1), actor="t"
    )
    with freeze_time(slot + timedelta(seconds=60)) as frozen:
        add_daemon(engine, SystemClock().now())
        code, report = health(capsys, url)
        assert code == 0, report
        assert report["overdue_schedules"] == []
        frozen.tick(timedelta(seconds=1))
        code, report = health(capsys, url)
        assert code == 1, report
        assert report["overdue_schedules"] == ["nightly"]


# -- the web's judgements, read from the real clock ---------------------------------------
def test_web_daemon_status_goes_stale_and_schedules_overdue(
    db: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, engine = db
    cheap_hashing(monkeypatch)
    app = make_app()
    sync_definitions(engine, app, "development", T, mark_removed=False)
    users.create_user(engine, "a@example.com", "a long password", "admin", now=T)
    token = users.create_token(engine, "a@example.com", now=T)
    set_enabled(engine, app, "development", "nightly", True, now=T, actor="t")
    with engine.begin() as conn:  # its next slot: 02:00 on the day after T
        conn.execute(
            update(JobSchedule)
            .where(col(JobSchedule.id) == "nightly")
            .values(next_run_at=datetime(2027, 11, 7, 2, 0))
        )
    add_daemon(engine, T)
    web = create_app(
        settings=settings_for(engine), app=app, engine=engine, clock=SystemClock(), events=None
    )
    headers = {"Authorization": f"Bearer {token}"}

    def status() -> dict[str, object]:
        with TestClient(web) as client:
            response = client.get(f"{API}/daemon/status", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    with freeze_time(T + timedelta(seconds=10)) as frozen:
        first = status()
        assert first["overdue_schedules"] == []
        assert [w["alive"] for w in first["workers"]] == [True]  # type: ignore[attr-defined]
        frozen.move_to(T + timedelta(seconds=301))
        stale = status()
        assert [w["alive"] for w in stale["workers"]] == [False]  # type: ignore[attr-defined]
        frozen.move_to(datetime(2027, 11, 7, 2, 1, 1, tzinfo=UTC))
        assert status()["overdue_schedules"] == ["nightly"]


# -- which daemons the CLI wakes: a lease seen from the CLI --------------------------------
def test_cli_wakes_a_daemon_only_while_its_heartbeat_is_fresh(
    capsys: pytest.CaptureFixture[str], db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = db
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(2)
        add_daemon(engine, T, wake_port=listener.getsockname()[1])
        env = {"DATABASE_URL": url, "JOBSYS_APP": str(app_file(tmp_path))}
        with freeze_time(T + timedelta(seconds=299)) as frozen:
            code, out = run_cli(capsys, ["jobs", "run", "noop"], env)
            assert code == 0, out
            assert "woke 1 daemon(s)" in out
            frozen.move_to(T + timedelta(seconds=301))
            code, out = run_cli(capsys, ["jobs", "run", "noop"], env)
            assert code == 0, out
            assert "woke 0 daemon(s)" in out
        assert listener.recv(64)  # the first wake-up did arrive


def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "tt_app.py"
    path.write_text(
        "from jobsys import App\napp = App('tt')\n@app.job(group='g')\ndef noop(ctx):\n    pass\n",
        encoding="utf-8",
    )
    return path
