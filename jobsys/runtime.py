"""What runs inside the process forked for a run: the job's context, the log capture,
the run loop.

``child_main`` is the whole life of that process after the fork (``forking`` made it);
it reports to the daemon over the pipes ``forking.open_pipes`` made, which the daemon's
``executor.Child`` reads:

* the message pipe, newline-delimited JSON: log lines (``ctx.log``, ``print``, Python
  ``logging``, ``sys.stderr`` writes, each stamped here), progress, and one final
  ``done`` message;
* fds 1 and 2, for output that bypasses Python's ``sys.stdout``: subprocesses, C
  extensions, and faulthandler's traceback on a segfault (the daemon stamps those).

The process drops the daemon's signal handlers and wakeup fd (signals stay blocked
across the fork until then); enables faulthandler on fd 2; runs
``Executor(after_fork=...)`` first if given (e.g. ``engine.dispose(close=False)``); and
always ends with ``os._exit``: it never returns into the daemon's code, never runs
atexit handlers or finalizers of objects it inherited, and does not wait for threads
the job started.

SIGTERM (cancel, timeout) sets ``ctx.cancelled``. A job that has read ``ctx.cancelled``
is cooperative: it gets ``kill_grace_s`` to return before SIGKILL. A job that never read
it is interrupted at once by a ``Terminated`` exception (a BaseException, so ``finally``
blocks run). SIGINT raises ``KeyboardInterrupt`` in the job (FAILED). An ``async def``
job is run with ``asyncio.run``.

This module never imports ``jobsys.executor`` (the daemon's side imports this one).
"""

from __future__ import annotations

import contextlib
import faulthandler
import inspect
import io
import json
import logging
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any, NoReturn

from jobsys.definitions import JobDef
from jobsys.forking import ALL_SIGNALS, EXIT_SETUP_FAILED, KeepAlive, enter_child, sig
from jobsys.runspec import RunSpec

#: Log lines kept per run; beyond that one "log truncated" line, then nothing.
MAX_LOG_LINES = 10_000
#: A captured output line (print, subprocess output) longer than this is cut.
MAX_LINE_BYTES = 8192
#: A ``ctx.log`` message (or a traceback) longer than this is cut.
MAX_MESSAGE_CHARS = 65536
#: At most one progress message per this many seconds (the last one always goes).
PROGRESS_INTERVAL_S = 0.05

_TRUNCATED = b" [truncated]"


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- shared with the daemon's side (executor.Child reads what this writes) --------------


class LineSplitter:
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


def decode_line(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")


def format_seconds(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.3f}".rstrip("0") + "s"


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


# -- the run's process -----------------------------------------------------------------

#: Objects the child replaced (old stdio, logging handlers) stay referenced here, so
#: their finalizers never run (they could flush the daemon's buffers a second time).
_KEEP: list[object] = []


def _line(message: dict[str, Any]) -> bytes:
    """One message as the pipe carries it. The leading newline isolates the fragment of
    a message whose write an exception from a signal handler cut short: it becomes its
    own (dropped) line."""
    return ("\n" + json.dumps(message) + "\n").encode()


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
        data = _line(message)
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
        self._splitter = LineSplitter(MAX_LINE_BYTES)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:  # e.g. subprocess.run(..., stdout=sys.stdout)
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        for line in self._splitter.feed(chunk):
            self._channel.log(self._level, decode_line(line))
        return len(chunk)

    def finish(self) -> None:
        for line in self._splitter.finish():
            self._channel.log(self._level, decode_line(line))


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


def reset_inherited_signals() -> None:
    """Drop the parent's Python signal handlers and wakeup fd (the process must never
    wake the daemon's loop nor run its handlers)."""
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for signum in ALL_SIGNALS:
        if signum in (signal.SIGTERM, signal.SIGINT):
            continue
        try:
            handler = sig.getsignal(signum)
        except (ValueError, OSError):
            continue
        if callable(handler) or (signum == signal.SIGCHLD and handler == sig.SIG_IGN):
            # sig's own SIG_DFL: the C function rejects the enum member signal.SIG_DFL.
            with contextlib.suppress(ValueError, OSError):
                sig.signal(signum, sig.SIG_DFL)


def install_run_signals(flag: _CancelFlag) -> None:
    """SIGTERM sets the run's cancel flag; SIGINT interrupts the job (only the job)."""
    signal.signal(signal.SIGTERM, flag.handler)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        # Interrupts the job like Ctrl-C would; outside the job it would escape into the
        # daemon's (or the worker's) frames, so it is ignored there.
        if flag.in_job:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


class Watchdog:
    """A thread that ends the current run when the daemon's keep-alive is older than the
    run's limit (the daemon is stopped or hung: its lease will expire and the run may
    start again elsewhere, so this one must be gone first). Start it while signals are
    blocked, so it never receives the run's signals. ``arm`` for a run, ``disarm`` after
    it (a pool worker keeps one watchdog for all its runs)."""

    def __init__(self, keepalive: KeepAlive) -> None:
        self._keepalive = keepalive
        self._cond = threading.Condition()
        self._limit_s: float | None = None
        self._fd = -1

    def start(self) -> None:
        threading.Thread(target=self._watch, name="jobsys-keepalive", daemon=True).start()

    def arm(self, limit_s: float, fd: int) -> None:
        with self._cond:
            self._limit_s, self._fd = limit_s, fd
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._limit_s, self._fd = None, -1

    def _watch(self) -> None:
        with self._cond:
            while True:
                if self._limit_s is None:
                    self._cond.wait()
                    continue
                self._cond.wait(max(0.02, min(1.0, self._limit_s / 10)))
                limit_s = self._limit_s
                if limit_s is None:
                    continue
                age = time.monotonic() - self._keepalive.last()
                if age > limit_s:
                    self._fire(age, limit_s)  # holding the lock: the run cannot end first

    def _fire(self, age: float, limit_s: float) -> None:
        error = (
            f"daemon lost: no keep-alive from the daemon for {age:.1f}s "
            f"(limit {format_seconds(limit_s)}); the run stopped itself so that the "
            "job cannot run twice at once"
        )
        _send_if_room(self._fd, {"k": "done", "s": "FAILED", "e": error})
        pid = os.getpid()
        with contextlib.suppress(OSError):
            if os.getpgid(0) == pid:  # our own group: the job's subprocesses go too
                os.killpg(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)


def _send_if_room(fd: int, message: dict[str, Any]) -> None:
    """Write one short message without blocking or locking: the daemon may be stopped
    with the pipe full, and a job thread may hold the channel's lock. A message shorter
    than PIPE_BUF is written whole; its leading newline ends any fragment before it."""
    data = _line(message)[: select.PIPE_BUF]
    with contextlib.suppress(OSError, ValueError):
        poller = select.poll()  # not select.select: fds above FD_SETSIZE
        poller.register(fd, select.POLLOUT)
        if poller.poll(0):
            os.write(fd, data)


class RunCapture:
    """The run's output onto its channel: ``sys.stdout``/``sys.stderr`` become log
    sinks (fds 1 and 2 stay the capture pipes), the root logger's handlers are replaced
    by one that sends records. ``finish`` flushes what is pending; the old objects are
    kept referenced (``_KEEP``) and not restored: a pool worker restores its own.

    Made in two steps: the objects (``__init__``), then ``install``, so that a pool
    worker can make the next run's while it is idle and only install them on hand-off."""

    def __init__(self, channel: _Channel) -> None:
        self.out_sink = _LogSink(channel, "INFO", 1)
        self.err_sink = _LogSink(channel, "ERROR", 2)
        self.streams = (_text_stream(self.out_sink), _text_stream(self.err_sink))
        self.handler = _LogHandler(channel)

    def install(self) -> RunCapture:
        _KEEP.extend((sys.stdout, sys.stderr))
        sys.stdout, sys.stderr = self.streams
        root = logging.getLogger()
        for handler in list(root.handlers):
            _KEEP.append(handler)
            root.removeHandler(handler)
        root.addHandler(self.handler)
        return self

    def finish(self) -> None:
        for stream in self.streams:
            with contextlib.suppress(Exception):
                stream.flush()
        self.out_sink.finish()
        self.err_sink.finish()


def new_run(
    spec: RunSpec, channel: _Channel, monotonic: Callable[[], float]
) -> tuple[_Context, _CancelFlag]:
    """The run's context and cancel flag, its signal handlers installed."""
    flag = _CancelFlag()
    install_run_signals(flag)
    return _Context(spec, channel, flag, monotonic), flag


def run_job(
    job: JobDef, ctx: _Context, flag: _CancelFlag, channel: _Channel
) -> tuple[str, str | None]:
    """Call the job (awaiting an ``async def`` one); its status and one-line error."""
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
    return status, error


def report_done(
    capture: RunCapture, ctx: _Context, channel: _Channel, status: str, error: str | None
) -> int:
    """Flush the run's output and progress, send ``done``; the exit code it stands for."""
    capture.finish()
    ctx.flush_progress()
    channel.send({"k": "done", "s": status, "e": error})
    return 0 if status == "SUCCESS" else 1


def report_setup_failure(channel: _Channel | None, exc: BaseException) -> None:
    """The executor's own setup failed (or a signal struck outside the job)."""
    with contextlib.suppress(BaseException):
        if channel is not None:
            channel.log("ERROR", traceback.format_exc().rstrip())
            error = f"could not run the job: {_describe_exception(exc)}"
            channel.send({"k": "done", "s": "FAILED", "e": error})
        else:
            os.write(2, traceback.format_exc().encode("utf-8", "replace"))


def child_main(
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
    """The life of a process just forked for ``spec``: set it up, run ``job``, report
    the outcome on the message pipe ``msg_w``, and ``os._exit``."""
    code = EXIT_SETUP_FAILED
    channel: _Channel | None = None
    try:
        enter_child(
            out_w=out_w, err_w=err_w, parent_fds=parent_fds, parent_pid=parent_pid, prctl=prctl
        )
        channel = _Channel(msg_w, now)
        reset_inherited_signals()
        ctx, flag = new_run(spec, channel, monotonic)
        with contextlib.suppress(Exception):
            faulthandler.cancel_dump_traceback_later()
        faulthandler.enable(file=2, all_threads=True)
        _KEEP.append(sys.stdin)
        capture = RunCapture(channel).install()
        if after_fork is not None:
            after_fork()
        if keepalive is not None and spec.keepalive_s:
            watchdog = Watchdog(keepalive)
            watchdog.arm(spec.keepalive_s, msg_w)
            watchdog.start()
        sig.pthread_sigmask(signal.SIG_SETMASK, ())
        status, error = run_job(job, ctx, flag, channel)
        code = report_done(capture, ctx, channel, status, error)
    except BaseException as exc:
        report_setup_failure(channel, exc)
    finally:
        os._exit(code)
