"""The daemon's side of the warm worker pool (design 6.5): which workers exist, which
are idle, and handing one a run.

The workers are forked by the fork server (see ``forkserver`` and ``poolworker``); the
daemon holds one end of a ``SOCK_SEQPACKET`` socket pair per worker. On that socket the
daemon receives the worker's ``{"k": "ready", "pid": n}`` once, with the read ends of
the worker's three pipes attached (messages, stdout, stderr: the worker keeps them for
its life), and the fork server's ``{"k": "exit", "w": status}`` when the worker dies
(``executor.Child`` reads it while the worker runs one of its runs; the pool sees it on
an idle worker before reuse). Handing a run to an idle worker is one ``send`` of the
run's spec, with no answer to wait for and no fd to make: much cheaper for the daemon
than a fork, or than three pipes per run.

The pool keeps ``size`` workers (``JOBSYS_CONCURRENCY``): more are forked on demand when
more runs are started at once, and the surplus retires when it comes back idle. A worker
that died, was killed or retired is replaced at once (asynchronously: its ``ready``
is read when a run needs it).
"""

from __future__ import annotations

import array
import contextlib
import json
import logging
import math
import os
import select
import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobsys.forkserver import ForkServer

_log = logging.getLogger("jobsys.executor")

#: How long a run waits for a worker being forked to say it is ready.
READY_WAIT_S = 10.0

#: The worker's pipes arrive close-on-exec (the daemon forks nothing after start-up
#: unless its fork server fails; a child forked then need not hold them).
_RECV_FLAGS = socket.MSG_DONTWAIT | getattr(socket, "MSG_CMSG_CLOEXEC", 0)


def _recv_fds(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One packet and the fds attached to it (at most 3), without blocking.
    (``socket.recv_fds`` of Python 3.11 ignores its ``flags``.)"""
    room = socket.CMSG_LEN(3 * _INT.itemsize)
    data, ancdata, _flags, _addr = sock.recvmsg(4096, room, _RECV_FLAGS)
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


_INT = array.array("i")


def readable(fd: int | socket.socket, timeout_s: float) -> bool:
    """Whether ``fd`` is readable within ``timeout_s``: ``poll``, not ``select.select``,
    which fails on fds above FD_SETSIZE (the daemon may hold that many)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, math.ceil(timeout_s * 1000))))


class WorkerLost(OSError):
    """A worker died before it could take a run."""


class ServerGone(OSError):
    """The fork server is gone: no worker can be forked (the executor falls back)."""


class PoolWorker:
    """The daemon's handle on one worker: its socket, its pid and the read ends of its
    pipes once it is ready, and whatever the executor keeps for it (``channels``, closed
    with the worker)."""

    __slots__ = ("channels", "dead", "pid", "pipes", "runs", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = 0  # known from its "ready" message
        self.pipes: list[int] = []  # messages, stdout, stderr: from its "ready" message
        self.channels: Any = None  # the executor's, with a close() method
        self.runs = 0
        self.dead = False

    def __repr__(self) -> str:
        return f"<PoolWorker pid={self.pid}>"

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def fds(self) -> list[int]:
        """Every fd the daemon holds for this worker."""
        own = [self.sock.fileno(), *self.pipes]
        if self.channels is not None:
            own += self.channels.fds
        return [fd for fd in own if fd >= 0]

    def hand(self, data: bytes) -> None:
        """Send one run's spec."""
        self.sock.send(data)
        self.runs += 1

    def read(self) -> tuple[list[dict[str, object]], bool]:
        """Messages waiting on the socket (never blocks), and whether it has ended (the
        worker and the fork server have both let go of it)."""
        out: list[dict[str, object]] = []
        while True:
            try:
                data, fds = _recv_fds(self.sock)
            except (BlockingIOError, InterruptedError):
                return out, False
            except OSError:
                return out, True
            if fds and not self.pipes and len(fds) == 3:
                self.pipes = list(fds)
                for fd in fds:
                    os.set_blocking(fd, False)
            else:
                for fd in fds:
                    os.close(fd)
            if not data:
                return out, True
            with contextlib.suppress(ValueError):
                msg = json.loads(data)
                if isinstance(msg, dict):
                    out.append(msg)

    def close(self) -> None:
        """Close everything the daemon holds for it (a live worker then exits)."""
        self.dead = True
        if self.channels is not None:
            self.channels.close()
            self.channels = None
        else:
            for fd in self.pipes:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pipes = []
        self.sock.close()


class WorkerPool:
    """Idle, busy and starting workers; see the module's docstring."""

    def __init__(self, server: ForkServer, *, size: int, max_runs: int, max_rss: int) -> None:
        self._server = server
        self.size = size
        self.max_runs = max_runs
        self.max_rss = max_rss
        self._idle: list[PoolWorker] = []
        self._busy: set[PoolWorker] = set()
        self._starting: list[PoolWorker] = []
        self._closed = False

    @property
    def fds(self) -> set[int]:
        """The fds the daemon holds for its workers (for tests that count fds)."""
        return {fd for w in (*self._idle, *self._busy, *self._starting) for fd in w.fds}

    def fill(self) -> None:
        """Fork workers up to ``size`` (not waiting for them)."""
        while len(self._idle) + len(self._busy) + len(self._starting) < self.size:
            self._spawn()

    def _spawn(self) -> PoolWorker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._server.spawn_worker(theirs.fileno(), max_runs=self.max_runs, max_rss=self.max_rss)
        except OSError as exc:  # ForkServerError: the server is closed or gone
            ours.close()
            raise ServerGone(str(exc)) from exc
        finally:
            theirs.close()
        worker = PoolWorker(ours)
        self._starting.append(worker)
        return worker

    def acquire(self) -> PoolWorker:
        """An idle worker (the most recently used first), or a new one once ready.
        ``ForkServerError`` if the server is gone, ``WorkerLost`` if a new worker died."""
        while self._idle:
            worker = self._idle.pop()
            got, ended = worker.read()  # a worker that died while idle says so here
            if not got and not ended:
                self._busy.add(worker)
                return worker
            self._drop(worker)
        for worker in self._starting:  # one that is ready already
            if readable(worker.sock, 0):
                break
        else:
            worker = self._starting[0] if self._starting else self._spawn()
        self._starting.remove(worker)
        self._wait_ready(worker)
        self._busy.add(worker)
        return worker

    def _wait_ready(self, worker: PoolWorker) -> None:
        end = time.monotonic() + READY_WAIT_S
        while True:
            left = end - time.monotonic()
            if left <= 0 or not readable(worker.sock, left):
                worker.close()
                raise WorkerLost(f"a new pool worker did not start within {READY_WAIT_S:.0f}s")
            got, ended = worker.read()
            for msg in got:
                if msg.get("k") == "ready" and worker.pipes:
                    worker.pid = int(str(msg["pid"]))
                    return
            if got or ended:
                worker.close()
                reason = next((str(m["error"]) for m in got if "error" in m), None)
                if reason is None and not got:  # nobody held the other end: no server
                    raise ServerGone("the fork server is gone")
                raise WorkerLost(f"a new pool worker failed: {reason or got}")

    def release(self, worker: PoolWorker, reusable: bool) -> None:
        """A run in ``worker`` ended; keep it for the next run, or replace it."""
        self._busy.discard(worker)
        if self._closed:
            worker.close()
            return
        total = len(self._idle) + len(self._busy) + len(self._starting)
        if reusable and not worker.dead and total < self.size:
            self._idle.append(worker)
            return
        self._drop(worker)
        try:
            self.fill()
        except OSError as exc:  # the server is gone: the next start falls back
            _log.warning("could not fork a new pool worker: %s", exc)

    def _drop(self, worker: PoolWorker) -> None:
        """Forget ``worker``: closing our end makes a live one exit."""
        worker.close()

    def close(self) -> None:
        """Close every idle and starting worker's socket (they exit); busy ones are
        closed when their run ends."""
        self._closed = True
        for worker in (*self._idle, *self._starting):
            worker.close()
        self._idle.clear()
        self._starting.clear()
