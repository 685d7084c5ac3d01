"""What every part of the web process shares: settings, the jobs and schedules, the
engine, the clock, the session signer, and the flag that says the server is stopping."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from jobsys.clock import Clock
from jobsys.config import Settings
from jobsys.definitions import App
from jobsys.store.overview import HourlyCache

log = logging.getLogger("jobsys.web")


@dataclass(frozen=True)
class EventTiming:
    """Pacing and limits of the Server-Sent Events streams (tests shorten them)."""

    poll_s: float = 0.75
    heartbeat_s: float = 15.0
    daemon_every_s: float = 5.0
    reauth_every_s: float = 60.0
    #: open streams per web process, and per account (429 beyond)
    max_streams: int = 1000
    max_streams_per_user: int = 20


@dataclass
class StreamCounter:
    """How many event streams are open, and how many times the database was polled for
    them (tests check that closed streams end and that streams share the polls)."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: int = 0
    _polls: int = 0

    def polled(self) -> None:
        with self._lock:
            self._polls += 1

    @property
    def polls(self) -> int:
        with self._lock:
            return self._polls

    def opened(self) -> None:
        with self._lock:
            self._open += 1

    def closed(self) -> None:
        with self._lock:
            self._open -= 1

    @property
    def open(self) -> int:
        with self._lock:
            return self._open


@dataclass
class WakeAddresses:
    """The live daemons' wake addresses, re-read at most every ``ttl_s`` while some are
    known: under a burst of admin writes the read cost as much as the write itself.

    An empty answer is never kept, so the first daemon to start is woken at once; a
    daemon that starts while others are cached is woken by the next re-read (its own
    poll is the safety net), and a wake sent to a daemon that has stopped is dropped.
    """

    ttl_s: float = 1.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _read_at: float = float("-inf")
    _addresses: list[tuple[str, int]] = field(default_factory=list)

    def get(self, read: Callable[[], list[tuple[str, int]]]) -> list[tuple[str, int]]:
        with self._lock:
            if self._addresses and time.monotonic() - self._read_at < self.ttl_s:
                return self._addresses
        addresses = read()
        with self._lock:
            self._addresses, self._read_at = addresses, time.monotonic()
        return addresses


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    app: App
    engine: Engine
    clock: Clock
    secret: str = field(repr=False)
    stopping: threading.Event
    events: EventTiming
    streams: StreamCounter
    wake_addresses: WakeAddresses = field(default_factory=WakeAddresses)
    #: the overview's counts of closed hours (``jobsys.store.overview``)
    overview_cache: HourlyCache = field(default_factory=HourlyCache)

    def wake_daemons(self) -> int:
        """Tell live daemons to look at the database now (after new work or an enable)."""
        from sqlalchemy.exc import SQLAlchemyError

        from jobsys.errors import JobsysError
        from jobsys.store.workers import live_wake_addresses, live_window
        from jobsys.wake import send_wake

        try:
            live = live_window(self.settings.poll_interval_ms)
            return send_wake(
                self.wake_addresses.get(
                    lambda: live_wake_addresses(self.engine, self.clock.now(), live)
                )
            )
        except (JobsysError, SQLAlchemyError) as exc:
            # The action is done; the daemons' safety-net poll will see it.
            log.warning("could not wake the daemons: %s", exc)
            return 0
