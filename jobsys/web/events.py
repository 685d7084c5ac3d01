"""``GET /api/admin/events``: live updates as Server-Sent Events.

The web learns of changes from the database, so it works when the daemons run in other
processes or on other hosts. One ``EventHub`` per web process serves every open stream:
its thread runs one ``ChangeWatcher`` that polls, every ``EventTiming.poll_s``, for rows
whose indexed ``updated_at`` moved, turns each change into an SSE frame once, and hands
the same frame to every stream (one database poll per interval, whatever the number of
streams; the thread runs only while a stream is open):

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

A new stream gets, at once, the daemon status and the rows changed in the last
``LOOKBACK`` (in case the client's first GET missed them), then what changes after.

Limits: at most ``EventTiming.max_streams`` open streams per web process and
``max_streams_per_user`` per account; beyond them the request gets 429
``too_many_streams`` (with ``Retry-After``). A client that does not read falls behind;
past ``MAX_BACKLOG`` unsent frames its stream ends with ``: too far behind`` (the
browser's EventSource reconnects), so a stuck client cannot hold memory.

A stream ends when the client goes away (Starlette cancels it), when the server shuts
down (``WebContext.stopping``; uvicorn would otherwise wait for it forever), or when its
session expires (checked every ``reauth_every_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from jobsys import health, present
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
#: Frames a stream may have waiting for its client before it is ended.
MAX_BACKLOG = 5000


@dataclass
class _Feed:
    kind: str
    newest: datetime | None = None
    #: id -> (updated_at, fingerprint, frame) of the rows seen within the look-back window
    sent: dict[Any, tuple[datetime, str, str]] = field(default_factory=dict)


def _fingerprint(row: Any) -> str:
    return json.dumps(dict(row._mapping), sort_keys=True, default=str)


class ChangeWatcher:
    """The changes not sent yet, as SSE frames. Synchronous: call it from one thread."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.feeds = {kind: _Feed(kind) for kind in KINDS}
        self.log_id = 0
        self.daemon_mark: str | None = None
        self.daemon_frame: str | None = None

    def prime(self) -> None:
        """Start from now: what changed before is not sent (apart from the last
        ``LOOKBACK``, in case the client's first GET missed it)."""
        with self.ctx.engine.connect() as conn:
            for feed in self.feeds.values():
                feed.newest = queries.latest_change(conn, feed.kind)
            self.log_id = queries.latest_log_id(conn)

    def poll(self) -> list[str]:
        changed: dict[str, list[Any]] = {}
        with self.ctx.engine.connect() as conn:
            # Each read sees what was committed when it ran (MySQL reads READ COMMITTED),
            # so a batch is read before its runs: a batch seen settled implies its runs
            # are read ended too, and the run frames still go first.
            for kind in reversed(KINDS):
                changed[kind] = self._changed(conn, self.feeds[kind])
            activity = queries.log_activity(conn, self.log_id)
        frames = [
            self._frame("run", row, present.run_json(queries.run_row(row)))
            for row in changed["run"]
        ]
        frames += [
            self._frame("batch", row, present.batch_json(queries.batch_row(row)))
            for row in changed["batch"]
        ]
        if changed["schedule"]:
            rows = {row.id: row for row in changed["schedule"]}
            found = schedule_views(
                self.ctx.engine, self.ctx.app, self.ctx.settings.env, include_inactive=True
            )
            frames += [
                self._frame("schedule", rows[v.id], views.schedule_entry(v))
                for v in found
                if v.id in rows
            ]
        for run_id, last in activity:
            frames.append(views.sse_frame("logs", {"run_id": run_id, "last_log_id": last}))
            self.log_id = max(self.log_id, last)
        return frames

    def recent(self) -> list[str]:
        """The last frame of each row changed within the look-back window (for a stream
        that opens now), oldest first within each kind."""
        frames: list[str] = []
        for kind in KINDS:
            kept = sorted(self.feeds[kind].sent.values(), key=lambda entry: entry[0])
            frames += [frame for _, _, frame in kept if frame]
        return frames

    def _frame(self, kind: str, row: Any, data: dict[str, Any]) -> str:
        frame = views.sse_frame(kind, data)
        at, mark, _ = self.feeds[kind].sent[row.id]
        self.feeds[kind].sent[row.id] = (at, mark, frame)
        return frame

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
                feed.sent[row.id] = (row.updated_at, mark, "")
            if feed.newest is None or row.updated_at > feed.newest:
                feed.newest = row.updated_at
        cutoff = self._since(feed)
        feed.sent = {k: v for k, v in feed.sent.items() if v[0] >= cutoff}
        return fresh

    def daemon(self) -> str | None:
        """The daemon status frame if it changed since the last call (the first always)."""
        status = views.daemon_status(health.evaluate(self.ctx.engine, self.ctx.clock.now()))
        mark = views.daemon_fingerprint(status)
        if mark == self.daemon_mark:
            return None
        self.daemon_mark = mark
        self.daemon_frame = views.sse_frame("daemon", status)
        return self.daemon_frame


class Subscriber:
    """One open stream: the frames waiting for it, filled by the hub's thread."""

    def __init__(self, user: str, loop: asyncio.AbstractEventLoop) -> None:
        self.user = user
        self.loop = loop
        self.ready = asyncio.Event()
        self.frames: deque[str] = deque()
        self.behind = False
        self.closed = False
        #: when the stream last came round its loop (a stream that never started, or
        #: whose client stopped reading, is dropped by the hub after a while)
        self.seen = time.monotonic()

    def push(self, frames: list[str]) -> None:
        """From the hub's thread."""
        if len(self.frames) + len(frames) > MAX_BACKLOG:
            self.behind = True
        else:
            self.frames.extend(frames)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def take(self) -> list[str]:
        taken: list[str] = []
        while self.frames:
            taken.append(self.frames.popleft())
        return taken

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the stream is over
            self.loop.call_soon_threadsafe(self.ready.set)


class EventHub:
    """Every open stream of this web process, fed by one watcher thread."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()
        self._thread: threading.Thread | None = None
        self._watcher: ChangeWatcher | None = None
        #: held while the watcher polls, so a new stream reads its state whole
        self._polling = threading.Lock()

    def subscribe(self, user: str, loop: asyncio.AbstractEventLoop) -> Subscriber:
        """A new stream for ``user``; 429 beyond the limits. Blocking (it may wait for a
        poll to end): call it from a thread."""
        timing = self.ctx.events
        with self._polling, self._lock:
            if len(self._subscribers) >= timing.max_streams:
                raise _too_many(f"this server already serves {timing.max_streams} event streams")
            mine = sum(1 for sub in self._subscribers if sub.user == user)
            if mine >= timing.max_streams_per_user:
                raise _too_many(
                    f"{user} already has {mine} event streams open (at most "
                    f"{timing.max_streams_per_user}); close another tab or window"
                )
            sub = Subscriber(user, loop)
            self._subscribers.add(sub)
            watcher = self._watcher
            if watcher is not None:  # the thread runs: catch up on what it knows
                sub.push([*([watcher.daemon_frame] if watcher.daemon_frame else [])])
                sub.push(watcher.recent())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="jobsys-events", daemon=True)
                self._thread.start()
        self.ctx.streams.opened()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub not in self._subscribers:
                return
            self._subscribers.discard(sub)
        self.ctx.streams.closed()

    def _broadcast(self, frames: list[str]) -> bool:
        """Hand ``frames`` to every stream; False once there is none (the thread ends)."""
        timing = self.ctx.events
        stale = time.monotonic() - (2 * max(timing.heartbeat_s, timing.poll_s) + 5)
        with self._lock:
            dropped = {sub for sub in self._subscribers if sub.seen < stale}
            self._subscribers -= dropped
            subscribers = list(self._subscribers)
            if not subscribers:
                self._thread = None
                self._watcher = None
        for sub in dropped:
            sub.close()
            self.ctx.streams.closed()
        if not subscribers:
            return False
        if frames:
            for sub in subscribers:
                sub.push(frames)
        return True

    def _run(self) -> None:
        ctx, timing = self.ctx, self.ctx.events
        watcher = ChangeWatcher(ctx)
        primed = False
        next_daemon = time.monotonic()
        while True:
            if ctx.stopping.is_set():
                with self._lock:
                    subscribers = list(self._subscribers)
                    self._thread = None
                    self._watcher = None
                for sub in subscribers:
                    sub.close()
                return
            frames: list[str] = []
            with self._polling:
                try:
                    if not primed:
                        watcher.prime()
                        primed = True
                        with self._lock:
                            self._watcher = watcher
                    ctx.streams.polled()
                    frames += watcher.poll()
                except (JobsysError, SQLAlchemyError) as exc:
                    # A database outage must not end the streams; they hear about it.
                    log.warning("events: cannot poll for changes: %s", exc)
                    frames.append(views.sse_comment("database unavailable"))
                now = time.monotonic()
                if now >= next_daemon:
                    next_daemon = now + timing.daemon_every_s
                    try:
                        status = watcher.daemon()
                    except (JobsysError, SQLAlchemyError) as exc:
                        log.warning("events: cannot read daemon status: %s", exc)
                        status = None
                    if status is not None:
                        frames.append(status)
            if not self._broadcast(frames):
                return
            ctx.stopping.wait(timing.poll_s)


def _too_many(message: str) -> ApiError:
    return ApiError(429, "too_many_streams", message, headers={"Retry-After": "30"})


def _still_allowed(ctx: WebContext, request: Request) -> bool:
    try:
        authenticate(ctx, request)
    except ApiError:
        return False
    return True


async def stream_events(
    ctx: WebContext, request: Request, hub: EventHub, sub: Subscriber
) -> AsyncIterator[str]:
    timing = ctx.events
    try:
        yield f"retry: 2000\n{views.sse_comment('connected')}"
        now = time.monotonic()
        next_auth = now + timing.reauth_every_s
        next_beat = now + timing.heartbeat_s
        while not ctx.stopping.is_set():
            wait = max(0.0, min(next_auth, next_beat) - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.ready.wait(), wait)
            sub.ready.clear()
            sub.seen = time.monotonic()
            if sub.closed:
                return
            if sub.behind:
                yield views.sse_comment("too far behind; reconnect")
                return
            now = time.monotonic()
            frames = sub.take()
            if frames:
                yield "".join(frames)
                next_beat = now + timing.heartbeat_s
            elif now >= next_beat:
                yield views.sse_comment("heartbeat")
                next_beat = now + timing.heartbeat_s
            if now >= next_auth:
                next_auth = now + timing.reauth_every_s
                try:
                    allowed = await run_in_threadpool(_still_allowed, ctx, request)
                except (JobsysError, SQLAlchemyError) as exc:
                    log.warning("events: cannot check auth: %s", exc)
                    allowed = True  # an outage must not end the stream
                if not allowed:
                    yield views.sse_comment("session ended")
                    return
    finally:
        hub.unsubscribe(sub)


def events_endpoint(ctx: WebContext) -> Callable[[Request], Any]:
    hub = EventHub(ctx)

    async def events(request: Request) -> Response:
        principal = await run_in_threadpool(authenticate, ctx, request)
        sub = await run_in_threadpool(hub.subscribe, principal.email, asyncio.get_running_loop())
        return StreamingResponse(
            stream_events(ctx, request, hub, sub),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return events
