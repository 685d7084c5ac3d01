"""Serving the web application with uvicorn (``jobsys web``).

Start-up: the session secret is checked (production needs ``SECRET_KEY``) and the
definitions are synced (``mark_removed=False``: an older web must not hide a newer
definition); later requests sync again only a schedule whose row lags its code. On
SQLite the web's writers take turns (``serialize_sqlite_writes``). Shutdown
(SIGTERM/SIGINT): ``WebServer`` sets the ``stopping`` flag the event streams watch, so
open streams end and uvicorn's graceful shutdown does not wait for them;
``GRACEFUL_SHUTDOWN_S`` bounds it anyway. A clean stop exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn
from sqlalchemy.engine import Engine

from jobsys.clock import Clock, SystemClock
from jobsys.config import Settings
from jobsys.definitions import App
from jobsys.store.db import serialize_sqlite_writes
from jobsys.store.schedules import sync_definitions
from jobsys.web.app import create_app

log = logging.getLogger("jobsys.web")

GRACEFUL_SHUTDOWN_S = 10


class WebServer(uvicorn.Server):
    """uvicorn's server, telling the application when it starts to stop."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)

    def stop(self) -> None:
        """Stop from another thread (tests; embedding)."""
        self.stopping.set()
        self.should_exit = True


def _route_uvicorn_logs(level: str) -> None:
    """uvicorn's loggers write through jobsys's handler (text or JSON, see ``logs``)."""
    handlers = logging.getLogger("jobsys").handlers
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = list(handlers) if name == "uvicorn" else []
        logger.propagate = name != "uvicorn"
        logger.setLevel(level)


def build_server(
    settings: Settings,
    app: App,
    engine: Engine,
    *,
    host: str,
    port: int,
    clock: Clock | None = None,
) -> WebServer:
    """Check the configuration, sync definitions and make the (not yet started) server."""
    secret = settings.session_secret()  # ConfigError in production without SECRET_KEY
    clock = clock or SystemClock()
    serialize_sqlite_writes(engine)  # writers queue instead of failing "database is locked"
    report = sync_definitions(engine, app, settings.env, clock.now(), mark_removed=False)
    if report.created or report.updated:
        log.info(
            "definitions synced: %d new, %d changed schedule(s)",
            len(report.created),
            len(report.updated),
        )
    stopping = threading.Event()
    web = create_app(
        settings=settings, app=app, engine=engine, clock=clock, stopping=stopping, secret=secret
    )
    config = uvicorn.Config(
        web,
        host=host,
        port=port,
        proxy_headers=True,
        log_config=None,
        log_level=settings.log_level.lower(),
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        lifespan="off",
    )
    return WebServer(config, stopping)


def run_web(
    settings: Settings,
    app: App,
    engine: Engine,
    host: str,
    port: int,
) -> int:
    """Serve until SIGTERM/SIGINT; returns 0 after a clean stop."""
    _route_uvicorn_logs(settings.log_level)
    server = build_server(settings, app, engine, host=host, port=port)
    # uvicorn re-raises the signal that stopped it once it has restored the previous
    # handlers; with these, that re-raise is a no-op and the process exits 0.
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("jobsys web on http://%s:%d/admin", host, port)
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _ignore(sig: int, frame: FrameType | None) -> None:
    return None
