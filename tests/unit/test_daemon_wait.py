"""The daemon's sleep (``Daemon._wait``): a due slot's tick starts at its instant, not
the kernel's timer slack (0.1% of the timeout: 3 ms after 3 s) or a rounded-up ms later."""

from __future__ import annotations

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


@pytest.mark.parametrize("timeout", [0.0, 0.0004, 0.003, 0.03, 0.6])
def test_wait_never_ends_early_and_ends_about_on_time(
    sleeper: tuple[Daemon, socket.socket], timeout: float
) -> None:
    daemon, _ = sleeper
    lates = []
    for _ in range(3):
        start = time.monotonic()
        Daemon._wait(daemon, timeout)
        lates.append(time.monotonic() - start - timeout)
    assert min(lates) >= 0
    # Plain select(0.6) ends ~0.6 ms late, and up to 1 ms later again from its rounding
    # up to a whole ms; a loaded machine can add any delay, so only the best of three.
    assert min(lates) < 0.0005 + 0.002


def test_wait_ends_at_once_on_an_event(sleeper: tuple[Daemon, socket.socket]) -> None:
    daemon, other = sleeper
    other.send(b"x")
    start = time.monotonic()
    Daemon._wait(daemon, 5.0)
    assert time.monotonic() - start < 1.0
