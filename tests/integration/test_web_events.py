"""Server-Sent Events through a real uvicorn server (in a thread): changes written to the
database by anyone (the store functions a daemon uses, or a real daemon process) reach
the stream; streams end on disconnect, on server shutdown and when the session expires."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from jobsys.loader import load_app
from jobsys.store import workers
from jobsys.store.db import write_engine
from jobsys.store.models import JobRun
from jobsys.store.runs import append_logs, claim_runnable, finish_run, set_progress
from jobsys.web.context import EventTiming, WebContext
from jobsys.web.events import ChangeWatcher
from tests.process_helpers import ROOT, daemon_process, wait_for
from tests.web_helpers import (
    ADMIN,
    API,
    PASSWORD,
    EventReader,
    ThreadServer,
    Web,
    thread_server,
    web_harness,
)

FAST = EventTiming(poll_s=0.1, heartbeat_s=0.4, daemon_every_s=0.3, reauth_every_s=0.2)


def context(web: Web) -> WebContext:
    ctx: WebContext = web.web.state.ctx
    return ctx


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch, events=FAST) as harness:
        yield harness


@pytest.fixture
def server(web: Web) -> Iterator[ThreadServer]:
    with thread_server(web.web, context(web).stopping) as running:
        yield running


@contextlib.contextmanager
def open_stream(
    client: httpx.Client, server: ThreadServer, headers: dict[str, str]
) -> Iterator[EventReader]:
    with client.stream("GET", f"{server.url}{API}/events", headers=headers) as response:
        yield EventReader(response)


def test_run_batch_schedule_log_and_daemon_events(web: Web, server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client, open_stream(client, server, web.admin) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-store"
        assert stream.line() == "retry: 2000"
        assert stream.line() == ": connected"
        stream.read(match=lambda kind, data: kind == "daemon")

        created = web.post("/schedules/etl-hourly/trigger").json()
        first = created["job_run_ids"][0]
        seen = stream.read(
            1,
            match=lambda kind, data: kind == "schedule" and data["last_run_status"] == "QUEUED",
        )
        queued = [d for k, d in seen if k == "run"]
        assert {d["id"] for d in queued} == set(created["job_run_ids"])
        assert all(d["status"] == "QUEUED" and "logs" not in d for d in queued)
        assert any(k == "batch" and d["id"] == created["batch_id"] for k, d in seen)

        (claimed,) = claim_runnable(
            web.engine, worker_id="d1", limit=1, clock=web.clock.now, known_jobs=["extract"]
        )
        stream.read(
            1,
            match=lambda k, d: k == "run" and d["id"] == first and d["status"] == "RUNNING",
        )
        set_progress(web.engine, first, 1, 2, web.clock.advance(1))
        append_logs(web.engine, first, [(web.clock.now(), "INFO", "half way")])
        seen = stream.read(2, match=lambda k, d: k in ("run", "logs"))
        progress = next(d for k, d in seen if k == "run")
        assert (progress["id"], progress["progress_done"], progress["progress_total"]) == (
            first,
            1,
            2,
        )
        logs = next(d for k, d in seen if k == "logs")
        assert logs["run_id"] == first and logs["last_log_id"] >= 1

        finish_run(
            web.engine,
            first,
            worker_id="d1",
            status="SUCCESS",
            error=None,
            exit_code=0,
            started_at=claimed.started_at,
            now=web.clock.advance(1),
        )
        seen = stream.read(
            1,
            match=lambda k, d: k == "run" and d["id"] == first and d["status"] == "SUCCESS",
        )
        assert seen[-1][1]["duration_ms"] == 2000

        workers.register(
            web.engine,
            worker_id="d1",
            hostname="host-a",
            pid=7,
            wake_host=None,
            wake_port=None,
            version="t",
            concurrency=1,
            now=web.clock.now(),
        )
        seen = stream.read(match=lambda k, d: k == "daemon" and d["daemon_running"])
        assert seen[-1][1]["health"] == "healthy"
        assert seen[-1][1]["workers"][0]["hostname"] == "host-a"


def test_each_change_is_sent_once(web: Web, server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client, open_stream(client, server, web.admin) as stream:
        stream.read(match=lambda kind, data: kind == "daemon")
        created = web.post("/jobs/run-all", {}).json()
        time.sleep(1.0)  # ten polls, all inside the look-back window
        web.post("/jobs/cleanup/run", {})
        seen = stream.read(
            match=lambda k, d: k == "run" and d["id"] == max(created["job_run_ids"]) + 1
        )
        run_ids = [d["id"] for k, d in seen if k == "run"]
        assert sorted(run_ids) == sorted({*created["job_run_ids"], run_ids[-1]})


def test_heartbeats_keep_a_quiet_stream_open(web: Web, server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client, open_stream(client, server, web.admin) as stream:
        started = time.monotonic()
        beats = 0
        for line in stream.lines:
            if line == ": heartbeat":
                beats += 1
                if beats == 2:
                    break
        assert time.monotonic() - started < 5


def test_a_closed_stream_stops_polling(web: Web, server: ThreadServer) -> None:
    ctx = context(web)
    with httpx.Client(timeout=10) as client:
        with open_stream(client, server, web.admin) as stream:
            stream.line()
            wait_for(lambda: ctx.streams.open == 1, 5)
        wait_for(lambda: ctx.streams.open == 0, 5)


def test_shutdown_ends_open_streams_at_once(web: Web, server: ThreadServer) -> None:
    ctx = context(web)
    with httpx.Client(timeout=10) as client, open_stream(client, server, web.admin) as stream:
        stream.line()
        took = server.stop()
        assert took < 3, f"shutdown waited {took:.1f}s for the stream"
        assert isinstance(stream.rest(), list)  # the server ended the response cleanly
    assert ctx.streams.open == 0


def test_a_stream_ends_when_its_session_expires(web: Web, server: ThreadServer) -> None:
    with httpx.Client(timeout=10, base_url=server.url) as client:
        response = client.post(f"{API}/login", json={"email": ADMIN, "password": PASSWORD})
        assert response.status_code == 200
        with client.stream("GET", f"{API}/events") as response:
            assert response.status_code == 200
            stream = EventReader(response)
            stream.line()
            web.clock.advance(13 * 3600)
            assert ": session ended" in stream.rest()  # returns: the server closed the stream
        assert client.get(f"{API}/events").status_code == 401


def test_viewers_may_listen_and_anonymous_may_not(web: Web, server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{server.url}{API}/events").status_code == 401
        with open_stream(client, server, web.viewer) as stream:
            assert stream.response.status_code == 200


def test_a_real_daemon_drives_the_stream(
    db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_path = str(ROOT / "tests" / "apps" / "isolation_app.py")
    app = load_app(app_path)
    with (
        web_harness(engine, monkeypatch, app=app, events=FAST) as web,
        daemon_process(db_url, tmp_path, engine, JOBSYS_APP=app_path),
        thread_server(web.web, context(web).stopping) as server,
        httpx.Client(timeout=20) as client,
        open_stream(client, server, web.admin) as stream,
    ):
        web.clock.set(datetime.now(UTC))  # so the daemon counts as live and is woken
        stream.read(match=lambda kind, data: kind == "daemon")
        response = web.post("/jobs/cooperative/run", {"params": {"seconds": 1.0}})
        assert response.status_code == 202
        run_id, batch_id = response.json()["job_run_ids"][0], response.json()["batch_id"]
        seen = stream.read(
            timeout=20,
            match=lambda k, d: k == "batch" and d["id"] == batch_id and d["status"] == "SUCCESS",
        )
        mine = [d for k, d in seen if k == "run" and d["id"] == run_id]
        # each event carries the run's state when it was read (the daemon may start it
        # before the first poll sees it queued): running with progress, then done
        assert any(d["status"] == "RUNNING" and d["progress_total"] == 1000 for d in mine)
        assert mine[-1]["status"] == "SUCCESS" and mine[-1]["worker_id"]

        quick = web.post("/jobs/ok/run").json()["job_run_ids"][0]
        seen = stream.read(
            timeout=20,
            match=lambda k, d: k == "run" and d["id"] == quick and d["status"] == "SUCCESS",
        )
        assert any(k == "logs" and d["run_id"] == quick for k, d in seen) or (
            [line["message"] for line in web.get(f"/job-runs/{quick}").json()["logs"]]
            == ["all good"]
        )


def test_a_row_stamped_in_the_future_hides_nothing(web: Web, server: ThreadServer) -> None:
    ids = web.post("/jobs/run-all", {}).json()["job_run_ids"]
    with httpx.Client(timeout=10) as client, open_stream(client, server, web.admin) as stream:
        stream.read(match=lambda kind, data: kind == "daemon")
        ahead = web.clock.now() + timedelta(days=1)  # a writer whose clock runs a day ahead
        with write_engine(web.engine).begin() as conn:
            conn.execute(update(JobRun).where(col(JobRun.id) == ids[0]).values(updated_at=ahead))
        set_progress(web.engine, ids[0], 1, 9, ahead)
        stream.read(match=lambda k, d: k == "run" and d["id"] == ids[0] and d["progress_done"])
        set_progress(web.engine, ids[1], 2, 3, web.clock.advance(1))
        seen = stream.read(match=lambda k, d: k == "run" and d["id"] == ids[1])
        assert seen[-1][1]["progress_done"] == 2


def test_a_batch_is_never_sent_settled_before_its_run_ended(web: Web) -> None:
    """One poll reads each kind in its own statement (MySQL reads READ COMMITTED); a run
    and its batch that end between two of those reads must not reach a client as a
    settled batch whose run is still running."""
    ctx = context(web)
    created = web.post("/jobs/cleanup/run", {}).json()
    run_id, batch_id = created["job_run_ids"][0], created["batch_id"]
    (claimed,) = claim_runnable(
        web.engine, worker_id="d1", limit=1, clock=web.clock.now, known_jobs=["cleanup"]
    )
    watcher = ChangeWatcher(ctx)
    watcher.prime()
    watcher.poll()  # the run, RUNNING, and its batch are sent

    fired: list[str] = []

    def end_the_run_after_the_first_read(conn: Any, *args: Any) -> None:
        if fired or "updated_at" not in str(args[1]):
            return
        fired.append(str(args[1]))
        finish_run(
            web.engine,
            run_id,
            worker_id="d1",
            status="SUCCESS",
            error=None,
            exit_code=0,
            started_at=claimed.started_at,
            now=web.clock.advance(1),
        )

    event.listen(ctx.engine, "after_cursor_execute", end_the_run_after_the_first_read)
    try:
        frames = watcher.poll()
    finally:
        event.remove(ctx.engine, "after_cursor_execute", end_the_run_after_the_first_read)
    assert fired, "the poll read nothing"
    sent = [_parse_frame(frame) for frame in frames]
    settled = [i for i, (k, d) in enumerate(sent) if k == "batch" and d["id"] == batch_id]
    for i in settled:
        if sent[i][1]["status"] == "SUCCESS":
            ended = [j for j, (k, d) in enumerate(sent[:i]) if k == "run" and d["id"] == run_id]
            assert ended and sent[ended[-1]][1]["status"] == "SUCCESS", sent
    final = watcher.poll()  # whatever this poll did not send, the next one does
    statuses = {(k, d["id"]): d["status"] for k, d in map(_parse_frame, frames + final)}
    assert statuses[("run", run_id)] == "SUCCESS" and statuses[("batch", batch_id)] == "SUCCESS"


def _parse_frame(frame: str) -> tuple[str, dict[str, Any]]:
    head, data = frame.strip().split("\n")
    return head.removeprefix("event: "), json.loads(data.removeprefix("data: "))
