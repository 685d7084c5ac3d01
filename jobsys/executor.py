"""Run each job in a forked child process (design 6.5), reporting through pipes.

The daemon is a single-threaded ``selectors`` loop; it calls ``Executor.start`` to fork
one child per run (as RQ's work-horse does), so that an exception, ``sys.exit``, a
segfault, an OOM kill or a hang fails that run with a clear reason and leaves the daemon
healthy. The executor has no database access: the daemon writes what ``Child.drain``
and ``Child.poll`` return.

Channels (parent side, all non-blocking):

* a message pipe of newline-delimited JSON: log lines (``ctx.log``, ``print``, Python
  ``logging``, ``sys.stderr`` writes, each stamped in the child), progress, and one final
  ``done`` message;
* two capture pipes on the child's fds 1 and 2, for output that bypasses Python's
  ``sys.stdout``: subprocesses, C extensions, and faulthandler's traceback on a segfault
  (fd 1 → INFO, fd 2 → ERROR, stamped when read);
* a pidfd (Linux ≥ 5.3) that becomes readable when the child exits.

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
own pid.

Child side: its own process group (Ctrl-C at the daemon's terminal does not reach jobs;
cancel and timeout signal the whole group, so the job's subprocesses go too); the
daemon's signal handlers and wakeup fd dropped (signals stay blocked across the fork
until then); stdin from /dev/null; faulthandler on fd 2; SIGKILL if the daemon dies
(Linux ``PR_SET_PDEATHSIG``); ``Executor(after_fork=...)`` runs first if given (e.g.
``engine.dispose(close=False)``); and it always ends with ``os._exit``: it never returns
into the daemon's code, never runs atexit handlers or finalizers of objects it
inherited, and does not wait for threads the job started. When the child exits, any
process it left in its group is killed.

SIGTERM (cancel, timeout) sets ``ctx.cancelled``. A job that has read ``ctx.cancelled``
is cooperative: it gets ``kill_grace_s`` to return before SIGKILL. A job that never read
it is interrupted at once by a ``Terminated`` exception (a BaseException, so ``finally``
blocks run). SIGINT raises ``KeyboardInterrupt`` in the job (FAILED). An ``async def``
job is run with ``asyncio.run``.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import inspect
import io
import json
import logging
import mmap
import os
import select
import selectors
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from jobsys.definitions import App, JobDef, format_bytes
from jobsys.errors import DefinitionError
from jobsys.runspec import RunSpec as RunSpec  # re-exported: callers' old import

if TYPE_CHECKING:
    from jobsys.forkserver import ForkServer

#: Log lines kept per run; beyond that one "log truncated" line, then nothing.
MAX_LOG_LINES = 10_000
#: A captured output line (print, subprocess output) longer than this is cut.
MAX_LINE_BYTES = 8192
#: A ``ctx.log`` message (or a traceback) longer than this is cut.
MAX_MESSAGE_CHARS = 65536
#: At most one progress message per this many seconds (the last one always goes).
PROGRESS_INTERVAL_S = 0.05
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_READ_CHUNK = 65536
#: Bytes read from one pipe per call, so that a flooding child cannot starve the loop
#: (the fd stays readable, so the loop comes back).
_READ_BUDGET = 1 << 20
_MAX_MESSAGE_BYTES = 1 << 22
_TRUNCATED = b" [truncated]"
_PR_SET_PDEATHSIG = 1
#: The C functions under ``signal`` (same API; no enum conversion of each returned
#: signal number, which made ``pthread_sigmask``/``getsignal`` the costliest part of a
#: fork: about 0.4 ms per run).
_sig: Any = sys.modules.get("_signal", signal)
_ALL_SIGNALS = frozenset(int(s) for s in signal.valid_signals())
_EXIT_SETUP_FAILED = 70
#: ``Child.close`` waits this long for the fork server's word that a killed child exited.
_SERVER_EXIT_WAIT_S = 10.0
#: How often the daemon reads the resident memory of a child with a ``memory_limit``.
MEMORY_CHECK_S = 0.2
try:
    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
except (ValueError, OSError, AttributeError):
    _PAGE_SIZE = 4096

_log = logging.getLogger("jobsys.executor")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KeepAlive:
    """The daemon's last sign of life, in memory shared with every process forked after
    this object was made (the fork server and all job children).

    Why: a daemon stopped (SIGSTOP, a frozen VM) past ``LOCK_TIMEOUT_MS`` is declared
    dead and its runs are started again elsewhere, while its job processes, which do not
    stop with it, would still be working. The daemon ``beat()``s each time it renews its
    lease; each job child watches the value and kills its process group when it is older
    than ``RunSpec.keepalive_s`` (half the lock timeout), well before the lease expires.
    The value is ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for every process).
    """

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, 8)  # anonymous and MAP_SHARED: survives fork
        self.beat()

    def beat(self) -> None:
        struct.pack_into("d", self._mem, 0, time.monotonic())

    def last(self) -> float:
        value: float = struct.unpack_from("d", self._mem, 0)[0]
        return value


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


class _LineSplitter:
    """Bytes in, complete lines out; a line longer than ``limit`` is cut (rest dropped)."""

    __slots__ = ("buf", "limit", "skipping")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = b""
        self.skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        parts = (self.buf + data).split(b"\n") if self.buf else data.split(b"\n")
        self.buf = parts.pop()
        out: list[bytes] = []
        for part in parts:
            if self.skipping:  # the end of a line already cut
                self.skipping = False
            elif len(part) > self.limit:
                out.append(part[: self.limit] + _TRUNCATED)
            else:
                out.append(part)
        if len(self.buf) > self.limit:
            if not self.skipping:
                out.append(self.buf[: self.limit] + _TRUNCATED)
                self.skipping = True
            self.buf = b""
        return out

    def finish(self) -> list[bytes]:
        rest, self.buf = self.buf, b""
        skipping, self.skipping = self.skipping, False
        return [rest] if rest and not skipping else []


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")


def _format_seconds(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.3f}".rstrip("0") + "s"


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


def _describe_exception(exc: BaseException) -> str:
    """``"ExcType: first line of the message"`` (one line)."""
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable message>"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) > 1000:
        first = first[:1000] + "…"
    return f"{name}: {first}" if first else name


# -- parent side ------------------------------------------------------------------------


class _Stream:
    __slots__ = ("fd", "level", "splitter")

    def __init__(self, fd: int, level: str | None, limit: int) -> None:
        self.fd = fd
        self.level = level  # None for the message pipe
        self.splitter = _LineSplitter(limit)


class Child:
    """One running job process, seen from the daemon. Not thread-safe (nothing here is)."""

    def __init__(
        self,
        spec: RunSpec,
        pid: int,
        *,
        msg_fd: int,
        out_fd: int,
        err_fd: int,
        started_at: datetime,
        start_mono: float,
        kill_grace_s: float,
        monotonic: Callable[[], float],
        now: Callable[[], datetime],
        via_server: bool = False,
    ) -> None:
        self.spec = spec
        self.run_id = spec.run_id
        # Forked by the fork server: not our child, so its exit status arrives as an
        # "exit" message on the message pipe (the server reaps it) instead of waitpid.
        self._via_server = via_server
        self._exit_status: int | None = None
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
        self._streams: dict[int, _Stream] = {
            msg_fd: _Stream(msg_fd, None, _MAX_MESSAGE_BYTES),
            out_fd: _Stream(out_fd, "INFO", MAX_LINE_BYTES),
            err_fd: _Stream(err_fd, "ERROR", MAX_LINE_BYTES),
        }
        self._sel = selectors.DefaultSelector()
        self._pidfd: int | None = None
        if not via_server:
            # no pidfd (old kernel, not Linux): see next_deadline()
            with contextlib.suppress(AttributeError, OSError):
                self._pidfd = os.pidfd_open(pid)
        for fd in self._streams:
            self._sel.register(fd, selectors.EVENT_READ)
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
        if self._reaped:
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
            self._forced = ("FAILED", f"timed out after {_format_seconds(self.spec.timeout_s)}")
            self._terminate()
        if self._memory_check_at is not None and now >= self._memory_check_at:
            self._check_memory(now)
        if self._kill_at is not None and not self._killed and now >= self._kill_at:
            self._signal(signal.SIGKILL)
            self._killed = True
        self._pump()
        if not self._reap():
            return None
        self._pump(final=True)
        self._outcome = self._make_outcome()
        self._release()  # fileno() stays open (and never readable again) until close()
        return self._outcome

    def next_deadline(self) -> float | None:
        """The monotonic instant at which poll() must next be called, if any."""
        if self._outcome is not None:
            return None
        deadlines: list[float] = []
        if self._timeout_at is not None and self._forced is None and self._result is None:
            deadlines.append(self._timeout_at)
        if self._kill_at is not None and not self._killed:
            deadlines.append(self._kill_at)
        if self._memory_check_at is not None:
            deadlines.append(self._memory_check_at)
        if self._pidfd is None and not self._via_server:
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

    def _signal(self, signum: int) -> None:
        if self._reaped:  # the pid may belong to another process by now
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:  # no group (setpgid never happened): the pid alone
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signum)
        except PermissionError:
            pass

    def _pump(self, *, final: bool = False) -> None:
        if not self._streams:
            return
        if final:
            fds = list(self._streams)
        else:
            fds = [key.fd for key, _ in self._sel.select(0) if key.fd in self._streams]
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
        os.close(stream.fd)
        del self._streams[stream.fd]

    def _take(self, stream: _Stream, lines: list[bytes]) -> None:
        if stream.level is not None:
            if lines:
                ts = self._now()
                for line in lines:
                    self._add_line(LogLine(ts, stream.level, _decode(line)))
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
            elif kind == "exit" and self._via_server:
                self._exit_status = int(msg["w"])
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
            select.select([self._fd], [], [], 0.05)
            self._pump()
        self._reaped = True
        self._wait_status = -1 if self._exit_status is None else self._exit_status
        self._end_mono = self._monotonic()
        return True

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
        if exit_code is None:
            error = "the process's exit status was lost (reaped by someone else)"
        elif exit_code < 0:
            error = _signal_error(-exit_code)
        else:
            error = f"exited with code {exit_code} without reporting a result"
        return Outcome("FAILED", error, exit_code, duration_ms)

    def _release(self) -> None:
        """Close the pipes and the pidfd, each unregistered first.

        Forked children hold copies of these fds, so a close alone would not remove them
        from the epoll (epoll forgets an fd only when every copy is closed): the inner
        epoll would stay readable, and with it the daemon's selector.
        """
        for fd, stream in list(self._streams.items()):
            if stream.level is not None:  # a last line without its newline
                self._take(stream, stream.splitter.finish())
            self._sel.unregister(fd)
            os.close(fd)
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
        self._sel.close()
        self._closed = True


def open_pipes() -> list[int]:
    """A child's three pipes (message, stdout, stderr) as ``[r, w, r, w, r, w]``; none
    left open if one cannot be made."""
    fds: list[int] = []
    try:
        for _ in range(3):
            fds.extend(os.pipe())
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _prctl_function() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux (for ``PR_SET_PDEATHSIG``), else None."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            return ctypes.CDLL(None, use_errno=True).prctl
    return None


class Executor:
    """Forks one child per run. ``after_fork`` (optional) runs in each child first,
    e.g. to make the daemon's connection pool forget its connections. With ``server``
    (see ``forkserver``) the children are forked by that lean process instead; if it
    fails, the executor logs why and forks by itself from then on."""

    def __init__(
        self,
        app: App,
        *,
        kill_grace_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
        after_fork: Callable[[], None] | None = None,
        server: ForkServer | None = None,
        keepalive: KeepAlive | None = None,
    ) -> None:
        self.app = app
        # The server's own: its children must watch the memory the daemon beats.
        self.keepalive = keepalive or (server.keepalive if server is not None else KeepAlive())
        self.kill_grace_s = kill_grace_s
        self._monotonic = monotonic
        self._now = now
        self._after_fork = after_fork
        self._prctl = _prctl_function()
        self._server = server

    def start_many(self, specs: list[RunSpec]) -> list[Child | Exception]:
        """Start a child per spec; each result is the Child or why it did not start
        (``DefinitionError`` for a job this application lacks, ``OSError`` if no
        process could be made)."""
        out: list[Child | Exception | None] = []
        todo: list[int] = []
        for i, spec in enumerate(specs):
            try:
                self.app.get_job(spec.job_name)
            except DefinitionError as exc:
                out.append(exc)
                continue
            out.append(None)
            todo.append(i)
        if self._server is not None and todo:
            try:
                for i, got in zip(
                    todo, self._start_via_server([specs[i] for i in todo]), strict=True
                ):
                    out[i] = got
                return [x for x in out if x is not None]
            except OSError as exc:  # ForkServerError, or no fds left
                _log.error("the fork server failed (%s); forking from the daemon instead", exc)
                self._server.close()
                self._server = None
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
        """Stop the fork server, if any (after every child has ended)."""
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
        # Signals stay blocked across the fork, so none reaches the child before it has
        # replaced the daemon's handlers with its own.
        old_mask = _sig.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            _sig.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            for fd in fds:
                os.close(fd)
            raise
        if pid == 0:  # the child: never returns
            try:
                _child_main(
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
                os._exit(_EXIT_SETUP_FAILED)
        _sig.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        # Also here (not only in the child) so that the group exists before we may signal it.
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        for fd in (msg_w, out_w, err_w):
            os.close(fd)
        return self._child(spec, pid, (msg_r, out_r, err_r), started_at, start_mono, False)


# -- child side -------------------------------------------------------------------------

#: Objects the child replaced (old stdio, logging handlers) stay referenced here, so
#: their finalizers never run (they could flush the daemon's buffers a second time).
_KEEP: list[object] = []


class _Channel:
    """The child's end of the message pipe: one JSON object per line."""

    def __init__(self, fd: int, now: Callable[[], datetime]) -> None:
        self.fd = fd
        self.now = now
        self.lock = threading.RLock()  # jobs may log from threads
        self.log_count = 0
        self.broken = False
        self.before_log: Callable[[], None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        # The leading newline isolates the fragment of a message whose write an exception
        # from a signal handler cut short: it becomes its own (dropped) line.
        data = ("\n" + json.dumps(message) + "\n").encode()
        with self.lock:
            if self.broken:
                return
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self.fd, view) :]
            except OSError:  # the daemon is gone, or the job closed our fd
                self.broken = True

    def log(self, level: str, message: object) -> None:
        if self.log_count > MAX_LOG_LINES:  # the daemon drops them anyway
            return
        self.log_count += 1
        text = message if isinstance(message, str) else str(message)
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS] + " [truncated]"
        if not text.isascii():  # lone surrogates would not survive the database
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if self.before_log is not None:
            self.before_log()
        self.send({"k": "log", "l": level, "m": text, "t": self.now().isoformat()})


class _Logger:
    """``ctx.log``."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def debug(self, message: object) -> None:
        self._channel.log("DEBUG", message)

    def info(self, message: object) -> None:
        self._channel.log("INFO", message)

    def warning(self, message: object) -> None:
        self._channel.log("WARNING", message)

    warn = warning

    def error(self, message: object) -> None:
        self._channel.log("ERROR", message)

    critical = error

    def exception(self, message: object) -> None:
        """An ERROR line with the traceback of the exception being handled."""
        self._channel.log("ERROR", f"{message}\n{traceback.format_exc().rstrip()}")


class Terminated(BaseException):
    """Raised in a job that never looked at ``ctx.cancelled`` when SIGTERM arrives."""


class _CancelFlag:
    """SIGTERM sets it. A job that has read ``ctx.cancelled`` is cooperative and gets the
    grace to stop; any other job is interrupted at once (``Terminated``, a
    BaseException), so its ``finally`` blocks run instead of waiting for SIGKILL."""

    __slots__ = ("checked", "in_job", "is_set")

    def __init__(self) -> None:
        self.is_set = False
        self.checked = False
        self.in_job = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        first = not self.is_set
        self.is_set = True
        if first and self.in_job and not self.checked:
            raise Terminated("terminated (SIGTERM)")


class _Context:
    """What the job function receives (``jobsys.definitions.JobContext``)."""

    def __init__(
        self,
        spec: RunSpec,
        channel: _Channel,
        flag: _CancelFlag,
        monotonic: Callable[[], float],
    ) -> None:
        self._spec = spec
        # A copy: the job may change it, the record stays as the daemon sent it.
        self.params: dict[str, Any] = dict(spec.params)
        self.log = _Logger(channel)
        self._channel = channel
        self._flag = flag
        self._monotonic = monotonic
        self._last_progress = -1e18
        self._pending: tuple[int, int | None] | None = None
        channel.before_log = self._maybe_flush_progress

    def __repr__(self) -> str:
        return f"<JobContext run={self.run_id} job={self.job_name!r}>"

    # The run's identity: read from the record, not copied.
    @property
    def run_id(self) -> int:
        return self._spec.run_id

    @property
    def batch_id(self) -> int:
        return self._spec.batch_id

    @property
    def job_name(self) -> str:
        return self._spec.job_name

    @property
    def trigger(self) -> str:
        return self._spec.trigger

    @property
    def schedule_id(self) -> str | None:
        return self._spec.schedule_id

    @property
    def scheduled_for(self) -> datetime | None:
        return self._spec.scheduled_for

    @property
    def database_url(self) -> str:
        return self._spec.database_url

    @property
    def cancelled(self) -> bool:
        """True once cancellation (or the timeout) asked the job to stop."""
        self._flag.checked = True
        return self._flag.is_set

    def progress(self, done: int, total: int | None = None) -> None:
        value = (int(done), None if total is None else int(total))
        now = self._monotonic()
        finished = value[1] is not None and value[0] >= value[1]
        if finished or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._send_progress(value, now)
        else:
            self._pending = value

    def _send_progress(self, value: tuple[int, int | None], now: float) -> None:
        self._pending = None
        self._last_progress = now
        self._channel.send({"k": "progress", "d": value[0], "n": value[1]})

    def _maybe_flush_progress(self) -> None:
        if self._pending is not None:
            now = self._monotonic()
            if now - self._last_progress >= PROGRESS_INTERVAL_S:
                self._send_progress(self._pending, now)

    def flush_progress(self) -> None:
        if self._pending is not None:
            self._send_progress(self._pending, self._monotonic())


class _LogSink(io.RawIOBase):
    """The raw layer under the child's ``sys.stdout``/``sys.stderr``: lines → log lines."""

    def __init__(self, channel: _Channel, level: str, fd: int) -> None:
        super().__init__()
        self._channel = channel
        self._level = level
        self._fd = fd
        self._splitter = _LineSplitter(MAX_LINE_BYTES)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:  # e.g. subprocess.run(..., stdout=sys.stdout)
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        for line in self._splitter.feed(chunk):
            self._channel.log(self._level, _decode(line))
        return len(chunk)

    def finish(self) -> None:
        for line in self._splitter.finish():
            self._channel.log(self._level, _decode(line))


def _text_stream(sink: _LogSink) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.BufferedWriter(sink),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _level_name(levelno: int) -> str:
    if levelno < logging.INFO:
        return "DEBUG"
    if levelno < logging.WARNING:
        return "INFO"
    if levelno < logging.ERROR:
        return "WARNING"
    return "ERROR"


class _LogHandler(logging.Handler):
    """Python ``logging`` records in the child → job log lines at their level."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__(logging.NOTSET)
        self._channel = channel
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._channel.log(_level_name(record.levelno), message)


def _reset_signals(flag: _CancelFlag) -> None:
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)  # never wake the daemon's loop from here
    for signum in _ALL_SIGNALS:
        if signum in (signal.SIGTERM, signal.SIGINT):
            continue
        try:
            handler = _sig.getsignal(signum)
        except (ValueError, OSError):
            continue
        if callable(handler) or (signum == signal.SIGCHLD and handler == _sig.SIG_IGN):
            # _sig's own SIG_DFL: the C function rejects the enum member signal.SIG_DFL.
            with contextlib.suppress(ValueError, OSError):
                _sig.signal(signum, _sig.SIG_DFL)
    signal.signal(signal.SIGTERM, flag.handler)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        # Interrupts the job like Ctrl-C would; outside the job it would escape into the
        # daemon's frames, so it is ignored there.
        if flag.in_job:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


def _start_watchdog(keepalive: KeepAlive, limit_s: float, channel: _Channel) -> None:
    """A thread that ends this run when the daemon's keep-alive is older than ``limit_s``
    (the daemon is stopped or hung: its lease will expire and the run may start again
    elsewhere, so this one must be gone first). Started before the signal mask is
    cleared, so it never receives the run's signals."""
    interval = max(0.02, min(1.0, limit_s / 10))

    def watch() -> None:
        while True:
            time.sleep(interval)
            age = time.monotonic() - keepalive.last()
            if age <= limit_s:
                continue
            error = (
                f"daemon lost: no keep-alive from the daemon for {age:.1f}s "
                f"(limit {_format_seconds(limit_s)}); the run stopped itself so that the "
                "job cannot run twice at once"
            )
            _send_if_room(channel.fd, {"k": "done", "s": "FAILED", "e": error})
            pid = os.getpid()
            with contextlib.suppress(OSError):
                if os.getpgid(0) == pid:  # our own group: the job's subprocesses go too
                    os.killpg(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)

    threading.Thread(target=watch, name="jobsys-keepalive", daemon=True).start()


def _send_if_room(fd: int, message: dict[str, Any]) -> None:
    """Write one short message without blocking or locking: the daemon may be stopped
    with the pipe full, and a job thread may hold the channel's lock. A message shorter
    than PIPE_BUF is written whole; its leading newline ends any fragment before it."""
    data = ("\n" + json.dumps(message) + "\n").encode()[: select.PIPE_BUF]
    with contextlib.suppress(OSError, ValueError):
        _, writable, _ = select.select([], [fd], [], 0)
        if writable:
            os.write(fd, data)


def _child_main(
    job: JobDef,
    spec: RunSpec,
    *,
    msg_w: int,
    out_w: int,
    err_w: int,
    parent_fds: tuple[int, ...],
    parent_pid: int,
    prctl: Callable[..., int] | None,
    after_fork: Callable[[], None] | None,
    monotonic: Callable[[], float],
    now: Callable[[], datetime],
    keepalive: KeepAlive | None = None,
) -> NoReturn:
    code = _EXIT_SETUP_FAILED
    channel: _Channel | None = None
    try:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent_pid:  # the daemon died before prctl
                os._exit(_EXIT_SETUP_FAILED)
        for fd in parent_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        channel = _Channel(msg_w, now)
        flag = _CancelFlag()
        _reset_signals(flag)
        with contextlib.suppress(Exception):
            faulthandler.cancel_dump_traceback_later()
        faulthandler.enable(file=2, all_threads=True)

        out_sink = _LogSink(channel, "INFO", 1)
        err_sink = _LogSink(channel, "ERROR", 2)
        _KEEP.extend((sys.stdin, sys.stdout, sys.stderr))
        sys.stdout = _text_stream(out_sink)
        sys.stderr = _text_stream(err_sink)
        streams = (sys.stdout, sys.stderr)
        root = logging.getLogger()
        for handler in list(root.handlers):
            _KEEP.append(handler)
            root.removeHandler(handler)
        root.addHandler(_LogHandler(channel))

        ctx = _Context(spec, channel, flag, monotonic)
        if after_fork is not None:
            after_fork()
        if keepalive is not None and spec.keepalive_s:
            _start_watchdog(keepalive, spec.keepalive_s, channel)
        _sig.pthread_sigmask(signal.SIG_SETMASK, ())

        status, error = "SUCCESS", None
        try:
            flag.in_job = True
            try:
                result = job.func(ctx)
                if inspect.iscoroutine(result):  # an ``async def`` job
                    import asyncio

                    asyncio.run(result)
            finally:
                flag.in_job = False
        except SystemExit as exc:
            arg = "" if exc.code is None else repr(exc.code)
            status, error = "FAILED", f"job called sys.exit({arg})"
            channel.log("ERROR", f"{error}\n{traceback.format_exc().rstrip()}")
        except Terminated:
            status, error = "FAILED", "terminated (SIGTERM)"
            channel.log("WARNING", f"stopped by SIGTERM\n{traceback.format_exc().rstrip()}")
        except KeyboardInterrupt:
            status, error = "FAILED", "interrupted (KeyboardInterrupt)"
            channel.log("ERROR", traceback.format_exc().rstrip())
        except BaseException as exc:
            status, error = "FAILED", _describe_exception(exc)
            channel.log("ERROR", traceback.format_exc().rstrip())
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.flush()
        out_sink.finish()
        err_sink.finish()
        ctx.flush_progress()
        channel.send({"k": "done", "s": status, "e": error})
        code = 0 if status == "SUCCESS" else 1
    except BaseException as exc:
        # The executor's own setup failed (or a signal struck outside the job).
        with contextlib.suppress(BaseException):
            if channel is not None:
                channel.log("ERROR", traceback.format_exc().rstrip())
                error = f"could not run the job: {_describe_exception(exc)}"
                channel.send({"k": "done", "s": "FAILED", "e": error})
            else:
                os.write(2, traceback.format_exc().encode("utf-8", "replace"))
    finally:
        os._exit(code)
