"""Many event streams (issue 12, item 5), over real HTTP: every stream is served from one
shared watcher (one database poll per interval, whatever the number of streams), the
number of streams is capped per account and in total (429), and a real ``jobsys web``
process keeps its memory flat with hundreds of streams open."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from jobsys.clock import SystemClock
from jobsys.store import users
from jobsys.web.context import EventTiming, WebContext
from tests.event_load import open_stream, open_streams, rss_mb
from tests.system.test_web_process import web_process
from tests.web_helpers import API, ThreadServer, Web, thread_server, web_harness

TIMING = EventTiming(
    poll_s=0.1,
    heartbeat_s=0.5,
    daemon_every_s=0.3,
    reauth_every_s=60,
    max_streams=6,
    max_streams_per_user=4,
)


@pytest.fixture
def web(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    with web_harness(engine, monkeypatch, events=TIMING) as harness:
        yield harness


@pytest.fixture
def server(web: Web) -> Iterator[ThreadServer]:
    ctx: WebContext = web.web.state.ctx
    with thread_server(web.web, ctx.stopping) as running:
        yield running


def _statements_per_second(engine: Engine, seconds: float = 1.5) -> float:
    count = 0

    def counted(*_args: object) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", counted)
    try:
        time.sleep(seconds)
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count / seconds


def test_streams_share_one_database_poll(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    timing = EventTiming(poll_s=0.1, heartbeat_s=0.5, daemon_every_s=0.3, reauth_every_s=60)
    with web_harness(engine, monkeypatch, events=timing) as web:
        ctx: WebContext = web.web.state.ctx
        with thread_server(web.web, ctx.stopping) as server:
            with open_streams(server.url, [web.viewer_token], 1):
                time.sleep(0.5)
                one = _statements_per_second(engine)
            with open_streams(server.url, [web.viewer_token, web.admin_token], 20):
                time.sleep(0.5)
                twenty = _statements_per_second(engine)
    # one poll is a handful of statements every 0.1 s, shared by all the streams
    assert one > 0
    assert twenty < 2 * one + 10, (one, twenty)


def test_streams_are_capped_per_account_and_in_total(web: Web, server: ThreadServer) -> None:
    ctx: WebContext = web.web.state.ctx
    with open_streams(server.url, [web.viewer_token], 4):
        _sock, status = open_stream(server.url, web.viewer_token)
        assert status == 429
        answer = httpx.get(f"{server.url}{API}/events", headers=web.viewer)
        assert answer.status_code == 429
        error = answer.json()["error"]
        assert error["code"] == "too_many_streams"
        assert "viewer@example.com already has 4 event streams open" in error["message"]
        assert answer.headers["retry-after"]
        with open_streams(server.url, [web.admin_token], 2):
            answer = httpx.get(f"{server.url}{API}/events", headers=web.admin)
            assert answer.status_code == 429
            assert "already serves 6 event streams" in answer.json()["error"]["message"]
    # closed streams free their places
    deadline = time.monotonic() + 10
    while ctx.streams.open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ctx.streams.open == 0
    with open_streams(server.url, [web.viewer_token], 4):
        pass


@pytest.mark.slow
def test_a_web_process_keeps_its_memory_with_hundreds_of_streams(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    now = SystemClock().now()
    tokens = []
    for i in range(15):
        email = f"viewer{i}@example.org"
        users.create_user(engine, email, "s3cret-enough", "viewer", now=now)
        tokens.append(users.create_token(engine, email, now=now))
    with web_process(db_url, tmp_path) as (proc, url):
        with open_streams(url, tokens, 20):
            time.sleep(1)
        baseline = rss_mb(proc.pid)
        with open_streams(url, tokens, 300):
            time.sleep(3)
            loaded = rss_mb(proc.pid)
            started = time.monotonic()
            schedules = httpx.get(
                f"{url}{API}/schedules", headers={"Authorization": f"Bearer {tokens[0]}"}
            )
            took = time.monotonic() - started
        assert schedules.status_code == 200
        time.sleep(2)
        after = rss_mb(proc.pid)
    # was ~3 MB a stream (500 streams: +1.6 GB), and other requests waited seconds
    assert loaded - baseline < 100, (baseline, loaded)
    assert after - baseline < 100, (baseline, after)
    assert took < 2, took
