"""``GET /api/admin/events``: live updates as Server-Sent Events.

The web learns of changes from the database, so it works when the daemons run in other
processes or on other hosts. Each open stream has a ``ChangeWatcher`` that polls, every
``EventTiming.poll_s``, for rows whose indexed ``updated_at`` moved:

    event: run       data: a job run (as in GET /job-runs/{id}, without logs)
    event: batch     data: a batch (as in GET /batches/{id}, without runs)
    event: schedule  data: a schedule (as in GET /schedules/{id})
    event: logs      data: {"run_id", "last_log_id"}   new log lines of a run
    event: daemon    data: as GET /daemon/status; at connect, then when it changes

plus a ``: heartbeat`` comment every ``heartbeat_s`` when nothing else was sent.

Catching every change: a writer may commit a little after the ``updated_at`` it wrote,
so each poll re-reads ``LOOKBACK`` before the newest ``updated_at`` seen (or before now,
if that is earlier) and sends a row only if its content changed since it was last sent
(a fingerprint per row, kept for the window only). Rows are read in (``updated_at``, id)
pages, so a burst of changes sharing one timestamp is read in full. A change is missed
only if it was stamped more than ``LOOKBACK`` before it committed (a writer's clock far
behind the web's). Each event carries the row's state when it was read: states that
came and went between two polls (QUEUED then RUNNING) may be merged into the last one.

A stream ends when the client goes away (Starlette cancels it), when the server shuts
down (``WebContext.stopping``; uvicorn would otherwise wait for it forever), or when its
session expires (checked every ``reauth_every_s``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from jobsys import health
from jobsys.errors import JobsysError
from jobsys.store import queries
from jobsys.store.schedules import schedule_views
from jobsys.web import views
from jobsys.web.auth import authenticate
from jobsys.web.context import WebContext
from jobsys.web.errors import ApiError

log = logging.getLogger("jobsys.web.events")

LOOKBACK = timedelta(seconds=5)
PAGE = 500
MAX_PAGES = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Order in which kinds are sent within one poll (a run before the batch it settles).
KINDS = ("run", "batch", "schedule")


@dataclass
class _Feed:
    kind: str
    newest: datetime | None = None
    sent: dict[Any, tuple[datetime, str]] = field(default_factory=dict)


def _fingerprint(row: Any) -> str:
    return json.dumps(dict(row._mapping), sort_keys=True, default=str)


class ChangeWatcher:
    """The changes one stream has not sent yet. Synchronous: call it from a thread."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.feeds = {kind: _Feed(kind) for kind in KINDS}
        self.log_id = 0
        self.daemon_mark: str | None = None

    def prime(self) -> None:
        """Start from now: what changed before the stream opened is not sent (apart from
        the last ``LOOKBACK``, in case the client's first GET missed it)."""
        with self.ctx.engine.connect() as conn:
            for feed in self.feeds.values():
                feed.newest = queries.latest_change(conn, feed.kind)
            self.log_id = queries.latest_log_id(conn)

    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        changed: dict[str, list[Any]] = {}
        with self.ctx.engine.connect() as conn:
            for kind in KINDS:
                changed[kind] = self._changed(conn, self.feeds[kind])
            activity = queries.log_activity(conn, self.log_id)
        events += [("run", queries.run_to_dict(row)) for row in changed["run"]]
        events += [("batch", queries.batch_to_dict(row)) for row in changed["batch"]]
        if changed["schedule"]:
            ids = {row.id for row in changed["schedule"]}
            found = schedule_views(
                self.ctx.engine, self.ctx.app, self.ctx.settings.env, include_inactive=True
            )
            events += [("schedule", views.schedule_entry(v)) for v in found if v.id in ids]
        for run_id, last in activity:
            events.append(("logs", {"run_id": run_id, "last_log_id": last}))
            self.log_id = max(self.log_id, last)
        return events

    def _since(self, feed: _Feed) -> datetime:
        """Where the next read starts: ``LOOKBACK`` before the newest change seen, or
        before now if that is earlier (a row stamped in the future by a clock that runs
        ahead must not hide the changes that follow it)."""
        if feed.newest is None:
            return _EPOCH
        return min(feed.newest, self.ctx.clock.now()) - LOOKBACK

    def _changed(self, conn: Any, feed: _Feed) -> list[Any]:
        since = self._since(feed)
        rows: list[Any] = []
        after: tuple[datetime, Any] | None = None
        for _ in range(MAX_PAGES):
            page = queries.changed_rows(conn, feed.kind, since, after=after, limit=PAGE)
            rows += page
            if len(page) < PAGE:
                break
            after = (page[-1].updated_at, page[-1].id)
        fresh: list[Any] = []
        for row in rows:
            mark = _fingerprint(row)
            previous = feed.sent.get(row.id)
            if previous is None or previous[1] != mark:
                fresh.append(row)
            feed.sent[row.id] = (row.updated_at, mark)
            if feed.newest is None or row.updated_at > feed.newest:
                feed.newest = row.updated_at
        cutoff = self._since(feed)
        feed.sent = {k: v for k, v in feed.sent.items() if v[0] >= cutoff}
        return fresh

    def daemon(self) -> dict[str, Any] | None:
        """The daemon status if it changed since the last call (the first call always)."""
        status = views.daemon_status(health.evaluate(self.ctx.engine, self.ctx.clock.now()))
        mark = views.daemon_fingerprint(status)
        if mark == self.daemon_mark:
            return None
        self.daemon_mark = mark
        return status


def _still_allowed(ctx: WebContext, request: Request) -> bool:
    try:
        authenticate(ctx, request)
    except ApiError:
        return False
    return True


async def _pause(ctx: WebContext, seconds: float) -> None:
    """Sleep, but return as soon as the server starts stopping."""
    deadline = time.monotonic() + seconds
    while not ctx.stopping.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await anyio.sleep(min(left, 0.1))


async def _guarded(
    call: Callable[[], Any], what: str
) -> tuple[bool, Any]:  # (ok, result); a database outage must not end the stream
    try:
        return True, await run_in_threadpool(call)
    except (JobsysError, SQLAlchemyError) as exc:
        log.warning("events: cannot %s: %s", what, exc)
        return False, None


async def stream_events(
    ctx: WebContext, request: Request, watcher: ChangeWatcher
) -> AsyncIterator[str]:
    timing = ctx.events
    ctx.streams.opened()
    try:
        yield f"retry: 2000\n{views.sse_comment('connected')}"
        now = time.monotonic()
        next_daemon = now
        next_auth = now + timing.reauth_every_s
        next_beat = now + timing.heartbeat_s
        while not ctx.stopping.is_set():
            now = time.monotonic()
            if now >= next_auth:
                next_auth = now + timing.reauth_every_s
                ok, allowed = await _guarded(lambda: _still_allowed(ctx, request), "check auth")
                if ok and not allowed:
                    yield views.sse_comment("session ended")
                    return
            frames: list[str] = []
            ok, events = await _guarded(watcher.poll, "poll for changes")
            if ok:
                frames += [views.sse_frame(kind, data) for kind, data in events]
            else:
                frames.append(views.sse_comment("database unavailable"))
            if now >= next_daemon:
                next_daemon = now + timing.daemon_every_s
                ok, status = await _guarded(watcher.daemon, "read daemon status")
                if ok and status is not None:
                    frames.append(views.sse_frame("daemon", status))
            if frames:
                yield "".join(frames)
                next_beat = now + timing.heartbeat_s
            elif now >= next_beat:
                yield views.sse_comment("heartbeat")
                next_beat = now + timing.heartbeat_s
            await _pause(ctx, timing.poll_s)
    finally:
        ctx.streams.closed()


def events_endpoint(ctx: WebContext) -> Callable[[Request], Any]:
    async def events(request: Request) -> Response:
        await run_in_threadpool(authenticate, ctx, request)
        watcher = ChangeWatcher(ctx)
        await run_in_threadpool(watcher.prime)
        return StreamingResponse(
            stream_events(ctx, request, watcher),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return events
