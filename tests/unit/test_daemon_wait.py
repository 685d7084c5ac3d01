"""The daemon's sleep (``Daemon._wait``): a due slot's tick starts at its instant, not
the kernel's timer slack (0.1% of the timeout: 3 ms after 3 s) or a rounded-up ms later."""

from __future__ import annotations

import math
import selectors
import socket
import time
import types
from collections.abc import Iterator
from typing import cast

import pytest

from jobsys.daemon import Daemon, _floor_ms


@pytest.fixture
def sleeper() -> Iterator[tuple[Daemon, socket.socket]]:
    """Just what ``_wait`` touches: a selector holding the signal socket."""
    sel = selectors.DefaultSelector()
    ours, theirs = socket.socketpair()
    sel.register(ours, selectors.EVENT_READ, "signal")
    fake = types.SimpleNamespace(
        _selector=sel, _stop=False, _listener=None, _signal_r=ours, _ready=set()
    )
    try:
        yield cast(Daemon, fake), theirs
    finally:
        sel.close()
        ours.close()
        theirs.close()


def test_floor_ms() -> None:
    assert _floor_ms(0.0049) == 0.004
    assert _floor_ms(0.0009) == 0.0
    assert _floor_ms(-1.0) == 0.0


class _Kernel:
    """A selector and a ``time`` module on a simulated clock: ``select`` ends as late
    as Linux allows (its timeout rounded up to a whole ms, as Python does, plus 0.1%
    of it) and ``sleep`` exactly on time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timeouts: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def select(self, timeout: float | None = None) -> list[object]:
        assert timeout is not None and timeout >= 0
        self.timeouts.append(timeout)
        ms = math.ceil(round(timeout * 1000, 6)) / 1000
        self.now += ms + ms * 0.001
        return []


@pytest.mark.parametrize("timeout", [0.0, 0.0004, 0.003, 0.0101, 0.03, 3.0, 60.0])
def test_wait_ends_on_time_despite_timer_slack(
    monkeypatch: pytest.MonkeyPatch, timeout: float
) -> None:
    kernel = _Kernel()
    monkeypatch.setattr("jobsys.daemon.time", kernel)
    fake = types.SimpleNamespace(
        _selector=kernel, _stop=False, _listener=None, _signal_r=None, _ready=set()
    )
    start = kernel.now
    Daemon._wait(cast(Daemon, fake), timeout)
    late = kernel.now - start - timeout
    assert -1e-9 < late < 0.0001  # a plain select(3.0) would end 3 ms late
    assert len(kernel.timeouts) <= 4  # a 60 s sleep: a few wake-ups, no spinning


@pytest.mark.parametrize("timeout", [0.0, 0.0004, 0.003, 0.03])
def test_wait_never_ends_early(sleeper: tuple[Daemon, socket.socket], timeout: float) -> None:
    daemon, _ = sleeper
    start = time.monotonic()
    Daemon._wait(daemon, timeout)
    assert time.monotonic() - start >= timeout


def test_wait_ends_at_once_on_an_event(sleeper: tuple[Daemon, socket.socket]) -> None:
    daemon, other = sleeper
    other.send(b"x")
    start = time.monotonic()
    Daemon._wait(daemon, 5.0)
    assert time.monotonic() - start < 1.0
