"""The daemon's handle on the runs it starts (design 6.5): ``Executor`` and ``Child``.

The daemon is a single-threaded ``selectors`` loop; it calls ``Executor.start_many`` to
start runs, each isolated in a process of its own so that an exception, ``sys.exit``, a
segfault, an OOM kill or a hang fails that run with a clear reason and leaves the daemon
healthy. By default a run goes to an idle warm worker of a pool (``pool``,
``poolworker``; as Celery's prefork pool); a job with ``isolation="process"`` gets a
fresh process per run (as RQ's work-horse). Either way the daemon sees a ``Child`` with
the same interface. The executor has no database access: the daemon writes what
``Child.drain`` and ``Child.poll`` return.

Three modules share the work, importing one way only (executor → runtime → forking):

* ``forking``: fork with signals blocked, the pipes, the process group, the death
  signal, the keep-alive memory;
* ``runtime``: what runs in the forked process (the job's ``ctx``, log capture, signal
  handling, the keep-alive watchdog, ``child_main``);
* this module: the parent's side. The fork server (``forkserver``) and the pool workers
  (``poolworker``) use the first two and never this one; ``pool`` is the parent's side
  of the workers.

Channels (parent side, all non-blocking):

* a message pipe of newline-delimited JSON: log lines (stamped in the child), progress,
  and one final ``done`` message (see ``runtime``);
* two capture pipes on the child's fds 1 and 2, for output that bypasses Python's
  ``sys.stdout`` (fd 1 → INFO, fd 2 → ERROR, stamped when read);
* a pidfd (Linux ≥ 5.3) that becomes readable when the child exits; for a run in a pool
  worker, the worker's socket instead, on which the fork server reports its death (the
  run's own end is an ``exit`` message on the message pipe, then the pipes' end).

All four sit in one small epoll (kqueue on BSD/macOS) per child whose fd is
``Child.fileno()``: the loop registers that one fd and wakes for messages, output and
exit alike.

Driving it from a selectors loop::

    child = executor.start(spec)
    sel.register(child, selectors.EVENT_READ, child)
    ...
    deadlines = [d for c in children if (d := c.next_deadline()) is not None]
    timeout = max(0.0, min(deadlines) - monotonic()) if deadlines else None
    ready = {key.data for key, _ in sel.select(timeout)}
    now = monotonic()
    due = {c for c in children if (d := c.next_deadline()) is not None and d <= now}
    for child in ready | due:
        outcome = child.poll()            # timeout/kill enforcement, reads, reaps
        lines, progress = child.drain()   # everything read so far (also after the end)
        ...write lines/progress...
        if outcome is not None:
            sel.unregister(child)         # first unregister,
            child.close()                 # then close fileno()
            ...write outcome...

Rules for the daemon: call ``poll()`` (not only ``drain()``) when the fd is readable, or
the loop spins on a child that exited; once ``poll()`` returned the outcome, unregister
the child and then ``close()`` it, in that order (the fd is shared with other forked
children, so closing it first could leave it in the selector's epoll; after the outcome
it is never readable again, so a late unregister is harmless); never reap children
itself (no ``waitpid(-1)``, no ``SIGCHLD`` set to ``SIG_IGN``): each ``Child`` reaps its
own pid. When the child exits, any process it left in its group is killed; a pool
worker kills every process a run left (also outside its group) before it reports the
run's end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jobsys.definitions import ISOLATIONS, App, format_bytes
from jobsys.errors import DefinitionError
from jobsys.forking import (
    EXIT_SETUP_FAILED,
    KeepAlive,
    fork_blocked,
    open_pipes,
    prctl_function,
)
from jobsys.pool import PoolWorker, ServerGone, WorkerPool, readable
from jobsys.runspec import RunSpec
from jobsys.runtime import (
    MAX_LINE_BYTES,
    MAX_LOG_LINES,
    LineSplitter,
    child_main,
    decode_line,
    format_seconds,
    utcnow,
)

if TYPE_CHECKING:
    from jobsys.forkserver import ForkServer

# Names callers import from here (they lived in this module before the split).
__all__ = [
    "LEVELS",
    "MAX_LOG_LINES",
    "MEMORY_CHECK_S",
    "Child",
    "Executor",
    "KeepAlive",
    "LogLine",
    "Outcome",
    "RunSpec",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_READ_CHUNK = 65536
#: Bytes read from one pipe per call, so that a flooding child cannot starve the loop
#: (the fd stays readable, so the loop comes back).
_READ_BUDGET = 1 << 20
_MAX_MESSAGE_BYTES = 1 << 22
#: ``Child.close`` waits this long for the fork server's word that a killed child exited.
_SERVER_EXIT_WAIT_S = 10.0
#: How often the daemon reads the resident memory of a child with a ``memory_limit``.
MEMORY_CHECK_S = 0.2
try:
    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
except (ValueError, OSError, AttributeError):
    _PAGE_SIZE = 4096

_log = logging.getLogger("jobsys.executor")

#: ``os.sched_yield`` where the platform has it (see ``Executor.start_many``).
_sched_yield: Callable[[], None] | None = getattr(os, "sched_yield", None)


@dataclass(frozen=True)
class LogLine:
    ts: datetime
    level: str  # DEBUG, INFO, WARNING or ERROR
    message: str


@dataclass(frozen=True)
class Outcome:
    status: str  # SUCCESS, FAILED or CANCELLED
    error: str | None  # one line for FAILED and CANCELLED
    exit_code: int | None  # the process's exit code, or -signal
    duration_ms: int


# -- shared helpers ---------------------------------------------------------------------


def _signal_error(signum: int) -> str:
    if signum == signal.SIGKILL:
        return "killed by SIGKILL (out of memory?)"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    described = signal.strsignal(signum)
    if described:
        return f"killed by signal {name} ({described[0].lower() + described[1:]})"
    return f"killed by signal {name}"


# -- parent side ------------------------------------------------------------------------


class _Stream:
    __slots__ = ("fd", "level", "splitter")

    def __init__(self, fd: int, level: str | None, limit: int) -> None:
        self.fd = fd
        self.level = level  # None for the message pipe
        self.splitter = LineSplitter(limit)


def _streams(msg_fd: int, out_fd: int, err_fd: int) -> dict[int, _Stream]:
    return {
        msg_fd: _Stream(msg_fd, None, _MAX_MESSAGE_BYTES),
        out_fd: _Stream(out_fd, "INFO", MAX_LINE_BYTES),
        err_fd: _Stream(err_fd, "ERROR", MAX_LINE_BYTES),
    }


class _WorkerChannels:
    """A pool worker's pipes (read ends) and socket in one epoll, made once per worker
    and lent to each of its runs' ``Child`` (so a run costs no fd and no epoll change);
    closed with the worker (``PoolWorker.close``)."""

    def __init__(self, worker: PoolWorker) -> None:
        msg_fd, out_fd, err_fd = worker.pipes
        self.streams = _streams(msg_fd, out_fd, err_fd)
        self.sel = selectors.DefaultSelector()
        for fd in (*self.streams, worker.fileno()):
            self.sel.register(fd, selectors.EVENT_READ)
        self.pipes = list(worker.pipes)

    @property
    def fds(self) -> list[int]:
        return [self.sel.fileno()]

    def close(self) -> None:
        self.sel.close()
        for fd in self.pipes:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pipes = []


class Child:
    """One running job process, seen from the daemon. Not thread-safe (nothing here is)."""

    def __init__(
        self,
        spec: RunSpec,
        pid: int,
        *,
        msg_fd: int = -1,
        out_fd: int = -1,
        err_fd: int = -1,
        started_at: datetime,
        start_mono: float,
        kill_grace_s: float,
        monotonic: Callable[[], float],
        now: Callable[[], datetime],
        via_server: bool = False,
        worker: PoolWorker | None = None,
        on_end: Callable[[PoolWorker, bool], None] | None = None,
    ) -> None:
        self.spec = spec
        self.run_id = spec.run_id
        # Forked by the fork server: not our child, so its exit status arrives as an
        # "exit" message on the message pipe (the server reaps it) instead of waitpid.
        self._via_server = via_server
        self._exit_status: int | None = None
        self._exit_read_at: float | None = None  # monotonic, when the exit record was read
        self.pid = pid
        self.job_name = spec.job_name
        self.started_at = started_at
        self._start_mono = start_mono
        self._kill_grace_s = kill_grace_s
        self._monotonic = monotonic
        self._now = now
        self._timeout_at = start_mono + spec.timeout_s if spec.timeout_s else None
        self._memory_check_at = start_mono if spec.memory_limit else None
        self._kill_at: float | None = None
        self._killed = False
        self._forced: tuple[str, str] | None = None  # cancel/timeout/kill: (status, error)
        self._result: tuple[str, str | None] | None = None  # the child's "done" message
        self._lines: list[LogLine] = []
        self._line_count = 0
        self._progress: tuple[int, int | None] | None = None
        self._progress_new = False
        self._reaped = False
        self._wait_status: int | None = None
        self._end_mono: float | None = None
        self._outcome: Outcome | None = None
        self._msg_eof = False
        self._closed = False
        self._released = False
        self._pidfd: int | None = None
        # A run in a pool worker: it borrows the worker's pipes and epoll (which also
        # holds the worker's socket, on which the fork server reports its death); the
        # run's end is the "exit" record on the message pipe. ``on_end`` hands the
        # worker back to the pool when the child is closed.
        self._worker = worker
        self._on_end = on_end
        self._death: int | None = None  # the worker's wait status, if it died
        self._lost = False  # its socket ended without a status: the fork server is gone
        self._retire = False
        if worker is not None:
            if worker.channels is None:
                worker.channels = _WorkerChannels(worker)
            self._streams: dict[int, _Stream] = worker.channels.streams
            self._sel = worker.channels.sel
        else:
            self._streams = _streams(msg_fd, out_fd, err_fd)
            self._sel = selectors.DefaultSelector()
            for fd in self._streams:
                self._sel.register(fd, selectors.EVENT_READ)
            if not via_server:
                # no pidfd (old kernel, not Linux): see next_deadline()
                with contextlib.suppress(AttributeError, OSError):
                    self._pidfd = os.pidfd_open(pid)
            if self._pidfd is not None:
                self._sel.register(self._pidfd, selectors.EVENT_READ)
        self._fd: int = self._sel.fileno()

    def __repr__(self) -> str:
        return f"<Child run={self.run_id} pid={self.pid} job={self.job_name!r}>"

    # -- the loop's interface -------------------------------------------------------
    def fileno(self) -> int:
        """One fd, readable when the child wrote something or exited."""
        if self._closed:
            raise ValueError("the child's channels are closed")
        return self._fd

    def drain(self) -> tuple[list[LogLine], tuple[int, int | None] | None]:
        """Everything available now: log lines, and the latest progress if any came."""
        self._pump()
        lines, self._lines = self._lines, []
        progress = self._progress if self._progress_new else None
        self._progress_new = False
        return lines, progress

    def cancel(self, reason: str) -> None:
        """SIGTERM the process group; SIGKILL after the grace; the outcome is CANCELLED."""
        if self._reaped or self._result is not None or self._forced is not None:
            return
        self._forced = ("CANCELLED", f"cancelled: {reason}" if reason else "cancelled")
        self._terminate()

    def kill(self) -> None:
        """SIGKILL the process group at once (daemon shutdown after the grace)."""
        if self._reaped or (self._worker is not None and self._result is not None):
            return
        if self._forced is None and self._result is None:
            self._forced = ("FAILED", "killed by the daemon")
        self._signal(signal.SIGKILL)
        self._killed = True

    def poll(self) -> Outcome | None:
        """Enforce the timeout, read, reap; the Outcome once the child has exited."""
        if self._outcome is not None:
            return self._outcome
        now = self._monotonic()
        if (
            self._timeout_at is not None
            and now >= self._timeout_at
            and self._forced is None
            and self._result is None
            and not self._reaped
        ):
            assert self.spec.timeout_s is not None
            self._forced = ("FAILED", f"timed out after {format_seconds(self.spec.timeout_s)}")
            self._terminate()
        if self._memory_check_at is not None and now >= self._memory_check_at:
            self._check_memory(now)
        if (
            self._kill_at is not None
            and not self._killed
            and now >= self._kill_at
            and not self._ended_in_worker()  # a worker past its run lives on
        ):
            self._signal(signal.SIGKILL)
            self._killed = True
        self._pump()
        if not self._reap():
            return None
        self._pump(final=True)
        self._outcome = self._make_outcome()
        self._release()  # fileno() stays open (and never readable again) until close()
        if self._worker is None:
            self._give_back_worker()
        # A pool worker goes back at close(): its epoll is this child's fileno() until
        # the caller has unregistered it.
        return self._outcome

    def next_deadline(self) -> float | None:
        """The monotonic instant at which poll() must next be called, if any."""
        if self._outcome is not None:
            return None
        deadlines: list[float] = []
        if self._timeout_at is not None and self._forced is None and self._result is None:
            deadlines.append(self._timeout_at)
        if self._kill_at is not None and not self._killed and not self._ended_in_worker():
            deadlines.append(self._kill_at)
        if self._memory_check_at is not None:
            deadlines.append(self._memory_check_at)
        if self._worker is not None and self._exit_read_at is not None:
            # The run's exit record was read (by a drain() before poll()): a live worker
            # leaves nothing readable after it, so poll() is due, not on a wake-up. The
            # instant it was read, not "now": a loop that compares the deadline with
            # a "now" it read a moment earlier would never find it due, and spin.
            deadlines.append(self._exit_read_at)
        if self._pidfd is None and not self._via_server and self._worker is None:
            # Without a pidfd the exit shows only as the message pipe's EOF; a child
            # could close that early, so check now and then.
            deadlines.append(self._monotonic() + (0.01 if self._msg_eof else 0.25))
        return min(deadlines) if deadlines else None

    # -- internals ------------------------------------------------------------------
    def _check_memory(self, now: float) -> None:
        """Kill a child whose resident memory passed its limit (SIGKILL at once: memory
        runs out fast). Its RSS is read from /proc (Linux; elsewhere no limit applies)."""
        limit = self.spec.memory_limit
        if limit is None or self._reaped or self._forced is not None or self._result is not None:
            self._memory_check_at = None
            return
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as f:
                rss = int(f.read().split()[1]) * _PAGE_SIZE
        except (OSError, ValueError, IndexError):
            self._memory_check_at = None  # gone, or no /proc
            return
        if rss <= limit:
            self._memory_check_at = now + MEMORY_CHECK_S
            return
        self._memory_check_at = None
        self._forced = (
            "FAILED",
            f"memory limit {format_bytes(limit)} exceeded: RSS {format_bytes(rss)}",
        )
        self._signal(signal.SIGKILL)
        self._killed = True

    def _terminate(self) -> None:
        self._signal(signal.SIGTERM)
        if self._kill_grace_s <= 0:
            self._signal(signal.SIGKILL)
            self._killed = True
        else:
            self._kill_at = self._monotonic() + self._kill_grace_s

    def _ended_in_worker(self) -> bool:
        return self._worker is not None and self._result is not None

    def _signal(self, signum: int) -> None:
        if self._reaped:  # the pid may belong to another process by now
            return
        if self._worker is not None and (self._exit_status is not None or self._death is not None):
            return  # the worker is past this run (or gone)
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:  # no group (setpgid never happened): the pid alone
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signum)
        except PermissionError:
            pass

    def _pump(self, *, final: bool = False) -> None:
        if self._released or (not self._streams and self._worker is None):
            return  # (a worker's pipes carry its next run once this one is released)
        if final:
            fds = list(self._streams)
        else:
            fds = []
            for key, _ in self._sel.select(0):
                if key.fd in self._streams:
                    fds.append(key.fd)
                elif self._worker is not None and key.fd == self._worker.fileno():
                    self._read_worker()
        for fd in fds:
            stream = self._streams[fd]
            if stream.level is None and self._msg_eof:
                continue  # kept open at EOF (see _end_stream)
            self._read(stream)

    def _read(self, stream: _Stream) -> None:
        got = 0
        while got < _READ_BUDGET:
            try:
                chunk = os.read(stream.fd, _READ_CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self._end_stream(stream)
                return
            got += len(chunk)
            self._take(stream, stream.splitter.feed(chunk))

    def _read_worker(self) -> None:
        """The worker's socket: the fork server's record of its death (or the end)."""
        assert self._worker is not None
        got, ended = self._worker.read()
        for msg in got:
            if msg.get("k") == "exit":
                with contextlib.suppress(TypeError, ValueError):
                    self._death = int(str(msg["w"]))
        if ended and self._death is None:
            self._lost = True
        if self._lost or self._death is not None:
            # It stays registered until poll() has returned the outcome: it is readable
            # for good now (the server closes its copy after the record), so if drain()
            # read the record, the loop still comes back to poll().
            self._worker.dead = True

    def _end_stream(self, stream: _Stream) -> None:
        if stream.level is not None:  # a message cut off by the child's death is dropped
            self._take(stream, stream.splitter.finish())
        else:
            self._msg_eof = True
            if self._via_server:
                # The end of the run: keep the pipe (at EOF, so readable) in the epoll
                # until poll() returns the outcome. Closed here, a drain() that read the
                # exit record after poll() would leave nothing to wake the loop again.
                return
        self._sel.unregister(stream.fd)
        if self._worker is None:  # a worker's pipes (at their end: it died) go with it
            os.close(stream.fd)
        del self._streams[stream.fd]

    def _take(self, stream: _Stream, lines: list[bytes]) -> None:
        if stream.level is not None:
            if lines:
                ts = self._now()
                for line in lines:
                    self._add_line(LogLine(ts, stream.level, decode_line(line)))
            return
        for raw in lines:
            self._on_message(raw)

    def _on_message(self, raw: bytes) -> None:
        if not raw:
            return
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("k")
        try:
            if kind == "log":
                level = msg.get("l")
                try:
                    ts = datetime.fromisoformat(msg["t"])
                except (KeyError, TypeError, ValueError):
                    ts = self._now()
                self._add_line(
                    LogLine(ts, level if level in LEVELS else "INFO", str(msg.get("m", "")))
                )
            elif kind == "progress":
                total = msg.get("n")
                self._progress = (int(msg["d"]), None if total is None else int(total))
                self._progress_new = True
            elif kind == "exit" and (self._via_server or self._worker is not None):
                self._exit_status = int(msg["w"])
                self._exit_read_at = self._monotonic()
            elif kind == "retire" and self._worker is not None:
                self._retire = True
            elif kind == "done":
                error = msg.get("e")
                status = "SUCCESS" if msg.get("s") == "SUCCESS" else "FAILED"
                self._result = (status, None if error is None else str(error))
        except (KeyError, TypeError, ValueError):
            return

    def _add_line(self, line: LogLine) -> None:
        self._line_count += 1
        if self._line_count <= MAX_LOG_LINES:
            self._lines.append(line)
        elif self._line_count == MAX_LOG_LINES + 1:
            self._lines.append(
                LogLine(
                    line.ts,
                    "WARNING",
                    f"log truncated: the run wrote more than {MAX_LOG_LINES} lines; "
                    "the rest were dropped",
                )
            )

    def _reap(self, *, block: bool = False) -> bool:
        if self._reaped:
            return True
        if self._worker is not None:
            return self._reap_worker(block=block)
        if self._via_server:
            return self._reap_via_server(block=block)
        nohang = 0 if block else os.WNOHANG
        try:
            if hasattr(os, "WNOWAIT"):
                # Peek first: while the child is a zombie its pid cannot be reused, so
                # its group can be killed safely (processes the job left behind).
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | nohang)
                if info is None or info.si_pid == 0:
                    return False
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                _, status = os.waitpid(self.pid, 0)
            else:
                pid, status = os.waitpid(self.pid, nohang)
                if pid == 0:
                    return False
        except ChildProcessError:  # reaped elsewhere: the status is lost
            status = -1
        self._reaped = True
        self._wait_status = status
        self._end_mono = self._monotonic()
        return True

    def _reap_via_server(self, *, block: bool) -> bool:
        """The server's "exit" message (or the pipe's end if the server died)."""
        end = self._monotonic() + _SERVER_EXIT_WAIT_S
        while self._exit_status is None and not self._msg_eof:
            if not block or self._monotonic() >= end:
                return False
            readable(self._fd, 0.05)
            self._pump()
        self._reaped = True
        self._wait_status = -1 if self._exit_status is None else self._exit_status
        self._end_mono = self._monotonic()
        return True

    def _reap_worker(self, *, block: bool) -> bool:
        """The run's end: its "exit" record; or the worker's death (its status from the
        fork server, on the worker's socket)."""
        end = self._monotonic() + _SERVER_EXIT_WAIT_S
        while True:
            if self._exit_status is not None:
                status: int = self._exit_status
                break
            if self._death is not None:
                status = self._death
                break
            if self._lost:
                status = -1
                break
            if not block or self._monotonic() >= end:
                if not block:
                    return False
                status = -1
                break
            readable(self._fd, 0.05)
            self._pump()
        self._reaped = True
        self._wait_status = status
        self._end_mono = self._monotonic()
        return True

    def _give_back_worker(self) -> None:
        worker, on_end = self._worker, self._on_end
        if worker is None or on_end is None:
            return
        self._on_end = None
        reusable = (
            self._death is None
            and not self._lost
            and not self._retire
            and not self._killed
            and self._exit_status is not None
            and not self._msg_eof  # its pipes ended: it is gone
        )
        try:
            on_end(worker, reusable)
        except Exception:  # never let the pool's trouble fail this run's outcome
            _log.exception("could not hand a pool worker back")

    def _make_outcome(self) -> Outcome:
        assert self._end_mono is not None and self._wait_status is not None
        duration_ms = max(0, round((self._end_mono - self._start_mono) * 1000))
        exit_code: int | None = None
        if self._wait_status >= 0:
            exit_code = os.waitstatus_to_exitcode(self._wait_status)
        if self._forced is not None:
            status, error = self._forced
            return Outcome(status, error, exit_code, duration_ms)
        if self._result is not None:
            status, err = self._result
            if status == "FAILED" and not err:
                err = "failed"
            return Outcome(status, err, exit_code, duration_ms)
        if exit_code is None and self._lost:
            error = "the pool worker was lost (the fork server is gone)"
        elif exit_code is None:
            error = "the process's exit status was lost (reaped by someone else)"
        elif exit_code < 0:
            error = _signal_error(-exit_code)
        else:
            error = f"exited with code {exit_code} without reporting a result"
        return Outcome("FAILED", error, exit_code, duration_ms)

    def _release(self) -> None:
        """Close the pipes and the pidfd, each unregistered first (a pool worker's stay
        open for its next run: only a last line without its newline is taken).

        Forked children hold copies of these fds, so a close alone would not remove them
        from the epoll (epoll forgets an fd only when every copy is closed): the inner
        epoll would stay readable, and with it the daemon's selector.
        """
        if self._released:
            return
        self._released = True
        for fd, stream in list(self._streams.items()):
            if stream.level is not None:  # a last line without its newline
                self._take(stream, stream.splitter.finish())
            if self._worker is None:
                self._sel.unregister(fd)
                os.close(fd)
        if self._worker is None:
            self._streams.clear()
        if self._pidfd is not None:
            self._sel.unregister(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def close(self) -> None:
        """Close ``fileno()``: call it after unregistering the child from your selector.

        A child still running is killed and waited for; ``poll()`` then returns its
        outcome (FAILED "killed by the daemon" unless cancelled or timed out before) and
        ``drain()`` its last lines.
        """
        if self._closed:
            return
        if self._outcome is None:
            if not self._reaped:
                self.kill()
                self._reap(block=True)
            self._pump(final=True)
            self._outcome = self._make_outcome()
        self._release()
        self._closed = True
        self._give_back_worker()
        if self._worker is None:
            self._sel.close()


class Executor:
    """Starts runs. With ``server`` (see ``forkserver``), a run whose job's isolation
    (or else ``isolation``) is ``"pool"`` goes to an idle warm worker of a pool of
    ``pool_size`` (see ``pool``, ``poolworker``), and a ``"process"`` run to a child the
    server forks for it. Without a server every run is a child forked here.
    ``after_fork`` (optional) runs in each child forked here first, e.g. to make the
    daemon's connection pool forget its connections. If the server fails, the executor
    logs why and forks by itself (a fresh process per run) from then on."""

    def __init__(
        self,
        app: App,
        *,
        kill_grace_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        after_fork: Callable[[], None] | None = None,
        server: ForkServer | None = None,
        keepalive: KeepAlive | None = None,
        isolation: str = "pool",
        pool_size: int = 4,
        worker_max_runs: int = 1000,
        worker_max_rss: int = 512 << 20,
    ) -> None:
        self.app = app
        # The server's own: its children must watch the memory the daemon beats.
        self.keepalive = keepalive or (server.keepalive if server is not None else KeepAlive())
        self.kill_grace_s = kill_grace_s
        self._monotonic = monotonic
        self._now = now
        self._after_fork = after_fork
        self._prctl = prctl_function()
        self._server = server
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, not {isolation!r}")
        self.isolation = isolation
        self._pool: WorkerPool | None = None
        if server is not None:
            self._pool = WorkerPool(
                server, size=pool_size, max_runs=worker_max_runs, max_rss=worker_max_rss
            )
            if isolation == "pool" or any(j.isolation == "pool" for j in app.jobs.values()):
                try:
                    self._pool.fill()  # warm before the first run
                except OSError as exc:
                    self._server_failed(exc)

    @property
    def pool(self) -> WorkerPool | None:
        return self._pool

    def isolation_of(self, job_name: str) -> str:
        """The job's own ``isolation``, else the executor's."""
        return self.app.jobs[job_name].isolation or self.isolation

    def _server_failed(self, exc: Exception) -> None:
        _log.error("the fork server failed (%s); forking from the daemon instead", exc)
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._server is not None:
            self._server.close()
            self._server = None

    def start_many(self, specs: list[RunSpec]) -> list[Child | Exception]:
        """Start a child per spec; each result is the Child or why it did not start
        (``DefinitionError`` for a job this application lacks, ``OSError`` if no
        process could be made)."""
        started = self._start_many(specs)
        if _sched_yield is not None and any(isinstance(x, Child) for x in started):
            # The processes just woken (a worker handed its run, a child forked) are
            # often queued on this CPU, behind the rest of the daemon's tick (its next
            # statement): let them run first. Measured with 2 ms of work after the
            # hand-off: hand-off to job start 1.6-2.6 ms → 0.6-1.2 ms (medians; it
            # does not help a woken process that is not eligible yet). One syscall.
            _sched_yield()
        return started

    def _start_many(self, specs: list[RunSpec]) -> list[Child | Exception]:
        out: list[Child | Exception | None] = []
        todo: list[int] = []
        if self._server is not None and not self._server.alive():
            # Its workers died with it: none of them may take a run.
            self._server_failed(ServerGone("the fork server exited"))
        for i, spec in enumerate(specs):
            try:
                self.app.get_job(spec.job_name)
            except DefinitionError as exc:
                out.append(exc)
                continue
            out.append(None)
            if self._pool is not None and self.isolation_of(spec.job_name) == "pool":
                try:
                    out[i] = self._start_in_worker(spec)
                    continue
                except ServerGone as exc:  # this run and the next: a fresh process
                    self._server_failed(exc)
                except OSError as exc:  # WorkerLost, or no fds left
                    out[i] = exc
                    continue
            todo.append(i)
        if self._server is not None and todo:
            try:
                for i, got in zip(
                    todo, self._start_via_server([specs[i] for i in todo]), strict=True
                ):
                    out[i] = got
                return [x for x in out if x is not None]
            except OSError as exc:  # ForkServerError, or no fds left
                self._server_failed(exc)
        for i in todo:
            try:
                out[i] = self._fork(specs[i])
            except Exception as exc:
                out[i] = exc
        return [x for x in out if x is not None]

    def start(self, spec: RunSpec) -> Child:
        """Start a child that runs the job; raises DefinitionError if the job is unknown."""
        (got,) = self.start_many([spec])
        if isinstance(got, Exception):
            raise got
        return got

    def _start_in_worker(self, spec: RunSpec) -> Child:
        """Hand the run to an idle pool worker: one packet with the spec (no answer to
        wait for); the run's output comes on the worker's own pipes."""
        assert self._pool is not None
        data = spec.to_json()
        for attempt in range(3):
            worker = self._pool.acquire()
            started_at = self._now()
            start_mono = self._monotonic()
            try:
                worker.hand(data)
            except OSError:
                self._pool.release(worker, reusable=False)
                if attempt == 2:
                    raise
                continue
            return Child(
                spec,
                worker.pid,
                started_at=started_at,
                start_mono=start_mono,
                kill_grace_s=self.kill_grace_s,
                monotonic=self._monotonic,
                now=self._now,
                worker=worker,
                on_end=self._pool.release,
            )
        raise AssertionError("unreachable")

    def _start_via_server(self, specs: list[RunSpec]) -> list[Child | Exception]:
        assert self._server is not None
        started_at = self._now()
        start_mono = self._monotonic()
        out: list[Child | Exception] = []
        for spec, got in zip(specs, self._server.spawn(specs), strict=True):
            if isinstance(got, Exception):
                out.append(got)
                continue
            pid, msg_r, out_r, err_r = got
            out.append(self._child(spec, pid, (msg_r, out_r, err_r), started_at, start_mono, True))
        return out

    def _child(
        self,
        spec: RunSpec,
        pid: int,
        fds: tuple[int, int, int],
        started_at: datetime,
        start_mono: float,
        via_server: bool,
    ) -> Child:
        """The daemon's side of a started child, from the read ends of its pipes."""
        for fd in fds:
            os.set_blocking(fd, False)
        return Child(
            spec,
            pid,
            msg_fd=fds[0],
            out_fd=fds[1],
            err_fd=fds[2],
            started_at=started_at,
            start_mono=start_mono,
            kill_grace_s=self.kill_grace_s,
            monotonic=self._monotonic,
            now=self._now,
            via_server=via_server,
        )

    def close(self) -> None:
        """Stop the pool and the fork server, if any (after every child has ended)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._server is not None:
            self._server.close()
            self._server = None

    def _fork(self, spec: RunSpec) -> Child:
        """Fork a child from this process."""
        job = self.app.get_job(spec.job_name)
        for stream in (sys.stdout, sys.stderr):  # else the child would repeat their buffers
            with contextlib.suppress(Exception):
                stream.flush()
        fds = open_pipes()
        msg_r, msg_w, out_r, out_w, err_r, err_w = fds
        started_at = self._now()
        start_mono = self._monotonic()
        parent_pid = os.getpid()
        try:
            pid = fork_blocked()
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        if pid == 0:  # the child: never returns
            try:
                child_main(
                    job,
                    spec,
                    msg_w=msg_w,
                    out_w=out_w,
                    err_w=err_w,
                    parent_fds=(msg_r, out_r, err_r),
                    parent_pid=parent_pid,
                    prctl=self._prctl,
                    after_fork=self._after_fork,
                    monotonic=self._monotonic,
                    now=self._now,
                    keepalive=self.keepalive,
                )
            finally:
                os._exit(EXIT_SETUP_FAILED)
        # Also here (not only in the child) so that the group exists before we may signal it.
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        for fd in (msg_w, out_w, err_w):
            os.close(fd)
        return self._child(spec, pid, (msg_r, out_r, err_r), started_at, start_mono, False)
