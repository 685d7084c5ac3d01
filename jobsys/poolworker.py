"""A warm pool worker: a long-lived process that runs one run at a time (design 6.5).

The fork server forks it (``forkserver``), so it starts with the application imported
and without the daemon's database layer. It makes three pipes (messages, stdout,
stderr) for its whole life and sends their read ends to the daemon with its ``ready``
message on its control socket (``SOCK_SEQPACKET``, ``SCM_RIGHTS``). It then loops over
the runs the daemon hands it on that socket: one packet per run, the run's ``RunSpec``
as JSON. For each run it:

1. puts the stdout/stderr pipes on fds 1 and 2 and runs the job exactly as a forked
   process does (``runtime``: the same ``ctx``, log capture, cancel flag, keep-alive
   watchdog and ``done`` message, on the message pipe);
2. kills every process the run left behind (the worker is a child subreaper, so
   orphans come back to it; see ``forking.kill_descendants``);
3. restores what a job commonly changes and the next run must not inherit (see
   ``Baseline``);
4. writes ``{"k": "exit", "w": <wait status>}`` (and ``{"k": "retire"}`` when it will
   not take another run) on the message pipe, and points fds 1 and 2 back at
   /dev/null. Everything the run and its processes wrote to stdout/stderr is in those
   pipes by then (its processes are gone), so the daemon, once it reads ``exit``,
   reads them to their end and the run's output is complete; the next run is handed
   only after that.

It retires (exits 0 after the run) after ``max_runs`` runs, when its resident memory
passes ``max_rss`` bytes, when a thread the job started is still running, or when it
could not restore its state. A run that takes it down (``os._exit``, a segfault, a
SIGKILL from a timeout, a cancel, ``memory_limit`` or the kernel's OOM killer) shows as
the worker's death: the fork server reaps it and writes its exit status to the control
socket, the daemon fails the run with the reason and forks a new worker.

Signals: SIGTERM and SIGINT reach the run as in a fresh process (``runtime``); between
runs they are ignored (a late cancel must not kill an idle worker). The worker dies with
the fork server (``PR_SET_PDEATHSIG``), and exits when the daemon closes its socket.
This module never imports ``jobsys.executor`` nor ``jobsys.forkserver``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from jobsys.definitions import App
from jobsys.forking import (
    ALL_SIGNALS,
    EXIT_SETUP_FAILED,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_PDEATHSIG,
    KeepAlive,
    kill_descendants,
    sig,
)
from jobsys.runspec import RunSpec
from jobsys.runtime import (
    _KEEP,
    RunCapture,
    Watchdog,
    _Channel,
    new_run,
    report_done,
    report_setup_failure,
    reset_inherited_signals,
    run_job,
    utcnow,
)

_MAX_PACKET = 1 << 20
try:
    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
except (ValueError, OSError, AttributeError):
    _PAGE_SIZE = 4096


def _idle_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGINT between runs: a cancel that came late; nothing to stop."""


class Baseline:
    """What the worker restores after every run, as it was before the first:

    * the working directory, ``os.environ`` (with ``time.tzset()`` when it changed),
      the umask;
    * every signal handler set from Python, the signal mask, the real-time timer
      (``signal.alarm``/``setitimer``);
    * the root logger's handlers and level, ``logging.disable``;
    * ``sys.stdout``/``sys.stderr`` (the run's capture streams are dropped);
    * fds 1 and 2 (back to /dev/null) and fd 0 (/dev/null).

    Not restored (they persist to the next run in the same worker): module globals and
    caches, imported modules, ``sys.path``, other loggers' handlers and levels, open
    files and sockets the job kept, resource limits, the locale, random seeds,
    ``faulthandler`` settings. A thread the job left running retires the worker.
    """

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        # The environment as os.environ keeps it (encoded): compared in one C-level dict
        # comparison after each run; going through os.environ decodes every variable,
        # which was most of a no-op run's cost in the worker.
        store = _environ_store()
        self.environ_store = None if store is None else dict(store)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.handlers: dict[int, Any] = {}
        for signum in ALL_SIGNALS:
            with contextlib.suppress(ValueError, OSError):
                handler = sig.getsignal(signum)
                if handler is not None:
                    self.handlers[signum] = handler
        root = logging.getLogger()
        self.root_handlers = list(root.handlers)
        self.root_level = root.level
        self.logging_disable = logging.root.manager.disable
        self.stdout, self.stderr = sys.stdout, sys.stderr
        self.threads = threading.active_count()
        self.kept = len(_KEEP)

    def restore(self) -> str | None:
        """Put everything back; why the worker must retire instead, if it must."""
        why: str | None = None
        sys.stdout, sys.stderr = self.stdout, self.stderr
        del _KEEP[self.kept :]  # the worker's own objects, which it references anyway
        getsignal = sig.getsignal
        for signum, handler in self.handlers.items():
            if getsignal(signum) != handler:  # read without error at the baseline
                with contextlib.suppress(ValueError, OSError):
                    sig.signal(signum, handler)
        with contextlib.suppress(OSError):
            signal.setitimer(signal.ITIMER_REAL, 0)
        sig.pthread_sigmask(signal.SIG_SETMASK, ())
        root = logging.getLogger()
        if root.handlers != self.root_handlers:
            root.handlers[:] = self.root_handlers
        if root.level != self.root_level:
            root.setLevel(self.root_level)
        if logging.root.manager.disable != self.logging_disable:
            logging.disable(self.logging_disable)
        try:
            os.chdir(self.cwd)
        except OSError as exc:
            why = f"could not return to {self.cwd}: {exc}"
        store = _environ_store()
        if (store is None or store != self.environ_store) and os.environ != self.environ:
            os.environ.clear()
            os.environ |= self.environ
            time.tzset()  # in case the job changed the time zone variable
        os.umask(self.umask)
        if threading.active_count() > self.threads:
            why = why or "a thread the job started was still running"
        return why


def _environ_store() -> dict[Any, Any] | None:
    """``os.environ``'s own store (CPython keeps it encoded in ``_data``), or None where
    there is none (then the slower comparison decides)."""
    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else None


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def worker_main(
    app: App,
    ctl_fd: int,
    *,
    parent_fds: tuple[int, ...],
    parent_pid: int,
    prctl: Callable[..., int] | None,
    keepalive: KeepAlive,
    max_runs: int,
    max_rss: int,
) -> NoReturn:
    """The worker's whole life (forked with every signal blocked); never returns."""
    code = EXIT_SETUP_FAILED
    try:
        os.setpgid(0, 0)  # cancel and timeout signal the group: the run's subprocesses too
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent_pid:  # the fork server died before prctl
                os._exit(EXIT_SETUP_FAILED)
            prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        for fd in parent_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        ctl = socket.socket(fileno=ctl_fd)
        reset_inherited_signals()
        signal.signal(signal.SIGTERM, _idle_signal)
        signal.signal(signal.SIGINT, _idle_signal)
        with contextlib.suppress(Exception):
            faulthandler.cancel_dump_traceback_later()
        faulthandler.enable(file=2, all_threads=True)
        _KEEP.extend((sys.stdin, sys.stdout, sys.stderr))
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the worker's own, for life)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        watchdog = Watchdog(keepalive)
        watchdog.start()  # signals still blocked: the thread never takes the run's
        # The run's channels, for the worker's life: write ends here, read ends to the
        # daemon (close-on-exec: a job's subprocess gets only fds 1 and 2).
        ends = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        pipes = (ends[0][1], ends[1][1], ends[2][1])
        baseline = Baseline()
        sig.pthread_sigmask(signal.SIG_SETMASK, ())
        ready = json.dumps({"k": "ready", "pid": os.getpid()}).encode()
        socket.send_fds(ctl, [ready], [r for r, _ in ends])
        for r, _ in ends:
            os.close(r)
        runs = 0
        while True:
            # The next run's channel and capture are made while idle, not on hand-off.
            channel = _Channel(pipes[0], utcnow)
            capture = RunCapture(channel)
            data, fds, _flags, _addr = socket.recv_fds(ctl, _MAX_PACKET, 3)
            for fd in fds:  # none expected
                os.close(fd)
            if not data:  # the daemon closed the socket (the pool is closing)
                code = 0
                break
            runs += 1
            exit_code, why = _one_run(app, data, pipes, watchdog, baseline, channel, capture)
            if why is None and runs >= max_runs:
                why = f"recycled after {runs} runs"
            if why is None and max_rss and (rss := _rss()) > max_rss:
                why = f"recycled: RSS {rss >> 20} MB over {max_rss >> 20} MB"
            _end_run(pipes[0], exit_code, why)
            if why is not None:
                code = 0
                break
    finally:
        os._exit(code)


def _one_run(
    app: App,
    data: bytes,
    pipes: tuple[int, int, int],
    watchdog: Watchdog,
    baseline: Baseline,
    channel: _Channel,
    capture: RunCapture,
) -> tuple[int, str | None]:
    """Run one job on the worker's pipes (``channel`` on the message pipe, ``capture``
    made for it, not installed yet): the exit code it stands for, and why the worker
    must retire after it, if it must."""
    msg_w, out_w, err_w = pipes
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    code = EXIT_SETUP_FAILED
    try:
        spec = RunSpec.from_json(data)
        job = app.get_job(spec.job_name)
        ctx, flag = new_run(spec, channel, time.monotonic)
        capture.install()
        if spec.keepalive_s:
            watchdog.arm(spec.keepalive_s, msg_w)
        status, error = run_job(job, ctx, flag, channel)
        code = report_done(capture, ctx, channel, status, error)
    except BaseException as exc:
        report_setup_failure(channel, exc)
    finally:
        watchdog.disarm()
        # Whatever the job left (a thread, a stream's finalizer) must not write into
        # this fd number once the next run has it.
        channel.broken = True
    # Everything the run started goes before the daemon hears the run ended.
    kill_descendants()
    sig.signal(signal.SIGTERM, _idle_signal)  # the C function: no enum wrapping per run
    sig.signal(signal.SIGINT, _idle_signal)
    why = baseline.restore()
    if code == EXIT_SETUP_FAILED:
        why = why or "the run could not be set up"
    return code, why


def _end_run(msg_w: int, code: int, why: str | None) -> None:
    """Report the run's end (and the retirement) on the message pipe: everything the
    run wrote is in the pipes before it. Then fds 1 and 2 go back to /dev/null (the
    pipes stay open for the next run)."""
    message = b'\n{"k": "exit", "w": %d}\n' % (code << 8)
    if why is not None:
        message += b"%s\n" % json.dumps({"k": "retire", "why": why}).encode()
    with contextlib.suppress(OSError):
        view = memoryview(message)
        while view:
            view = view[os.write(msg_w, view) :]
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
