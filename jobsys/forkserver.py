"""A small process that forks the pool workers and the job children, so that the daemon
never forks.

Why: ``fork`` copies the parent's page tables, and afterwards every page either process
writes is copied on demand. The daemon, with SQLAlchemy and its caches loaded, is about
70 MB: a fork costs ~1.7 ms there and a no-op child's whole life ~5 ms of CPU (measured
on the benchmark machine), which capped throughput at a few hundred runs per second.
This server is forked by ``jobsys daemon`` right after the application is imported and
before the database layer is: ~16 MB, ~0.5 ms per fork. It forks the warm pool workers
(``poolworker``, the default isolation) and, for ``isolation="process"``, a fresh
process per run (RQ's work-horse model).

Protocol, over a ``SOCK_SEQPACKET`` socket pair (one message per packet):

* daemon → server: one run spec (JSON), for a run in a fresh process;
* server → daemon, in request order: ``{"pid": n}`` with the read ends of the child's
  message, stdout and stderr pipes attached (``SCM_RIGHTS``), or ``{"error": "..."}``;
* daemon → server: ``{"worker": {...options}}`` with one end of a new socket pair
  attached: fork a warm pool worker (``poolworker``) on that socket. No answer on this
  socket: the worker says ``{"k": "ready", "pid": n}`` on its own socket when it is.

The server keeps a copy of each worker's socket end: when the worker exits, it writes
``{"k": "exit", "w": <wait status>}`` there (so the daemon learns the status of a
worker that is not its child) and closes it; if the worker could not be forked it
writes ``{"error": "..."}``.

The daemon cannot wait for a process that is not its child, so the server keeps the
write end of each child's message pipe. When a child exits, the server kills what the
child left in its process group, reaps it and writes ``{"k": "exit", "w": <wait
status>}`` to that pipe before closing it: the daemon reads the exit status where it
reads everything else (see ``executor.Child``). This module uses ``forking`` and
``runtime``, never ``executor``: the daemon's side imports it, not the other way.

The server ignores SIGINT and SIGTERM (the daemon decides when jobs stop), exits when
the daemon closes the socket, and dies with the daemon (``PR_SET_PDEATHSIG``); its
children die with it in turn.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import time
from typing import Any, NoReturn

from jobsys.definitions import App
from jobsys.errors import DefinitionError
from jobsys.forking import (
    EXIT_SETUP_FAILED,
    PR_SET_PDEATHSIG,
    KeepAlive,
    fork_blocked,
    open_pipes,
    prctl_function,
    sig,
)
from jobsys.poolworker import worker_main
from jobsys.runspec import RunSpec
from jobsys.runtime import child_main, utcnow

_MAX_PACKET = 1 << 20
#: How long ``close`` waits for the server to exit before killing it.
_CLOSE_WAIT_S = 5.0


class ForkServerError(OSError):
    """The fork server is gone or answered nonsense; the daemon forks by itself then."""


class ForkServer:
    """The daemon's handle on the server process."""

    def __init__(self, sock: socket.socket, pid: int, keepalive: KeepAlive) -> None:
        self._sock = sock
        self.pid = pid
        #: Shared with the server and its children: the daemon beats it (see KeepAlive).
        self.keepalive = keepalive
        self._closed = False

    @classmethod
    def start(cls, app: App) -> ForkServer:
        """Fork the server; it serves ``app``'s jobs until ``close()``."""
        keepalive = KeepAlive()  # before the fork, so that the server shares it
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        daemon_pid = os.getpid()
        try:
            pid = fork_blocked()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            try:
                ours.close()
                _serve(app, theirs, daemon_pid, keepalive)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        theirs.close()
        return cls(ours, pid, keepalive)

    def spawn(self, specs: list[RunSpec]) -> list[tuple[int, int, int, int] | Exception]:
        """Start one child per spec; for each, ``(pid, msg_fd, out_fd, err_fd)`` or the
        error that kept it from starting. All requests go out before the first answer is
        read, so the server forks while the daemon waits."""
        if self._closed:
            raise ForkServerError("the fork server is closed")
        try:
            for spec in specs:
                self._sock.send(spec.to_json())
            out: list[tuple[int, int, int, int] | Exception] = []
            for _ in specs:
                data, fds, _flags, _addr = socket.recv_fds(self._sock, _MAX_PACKET, 3)
                if not data:
                    for fd in fds:
                        os.close(fd)
                    raise ForkServerError("the fork server exited")
                reply = json.loads(data)
                if "error" in reply or len(fds) != 3:
                    for fd in fds:
                        os.close(fd)
                    out.append(DefinitionError(str(reply.get("error", "no pipes received"))))
                    continue
                out.append((int(reply["pid"]), fds[0], fds[1], fds[2]))
            return out
        except (OSError, ValueError) as exc:
            self._closed = True
            raise ForkServerError(f"the fork server failed: {exc}") from exc

    def alive(self) -> bool:
        """Whether the server process still runs (a peek: it is not reaped here)."""
        if self._closed:
            return False
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None or info.si_pid == 0

    def spawn_worker(self, fd: int, *, max_runs: int, max_rss: int) -> None:
        """Ask for a pool worker on the socket ``fd`` (the worker's end; the caller
        closes its copy). Does not wait: the worker reports on its socket."""
        if self._closed:
            raise ForkServerError("the fork server is closed")
        request = {"worker": {"max_runs": max_runs, "max_rss": max_rss}}
        try:
            socket.send_fds(self._sock, [json.dumps(request).encode()], [fd])
        except OSError as exc:
            self._closed = True
            raise ForkServerError(f"the fork server failed: {exc}") from exc

    def close(self) -> None:
        """Close the socket (the server exits) and wait for the server."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        end = time.monotonic() + _CLOSE_WAIT_S
        while True:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            if time.monotonic() >= end:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.pid, 0)
                return
            time.sleep(0.01)


# -- the server process -----------------------------------------------------------------
class _Kid:
    """A child of the server: a run's process (``msg_w``, the write end of its message
    pipe) or a pool worker (``ctl``, the server's copy of its socket end)."""

    __slots__ = ("ctl", "msg_w", "pending", "pid", "pidfd")

    def __init__(self, pid: int, pidfd: int, msg_w: int = -1, ctl: int = -1) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.msg_w = msg_w
        self.ctl = ctl
        self.pending = b""

    def fds(self) -> list[int]:
        return [fd for fd in (self.pidfd, self.msg_w, self.ctl) if fd >= 0]


def _serve(app: App, sock: socket.socket, daemon_pid: int, keepalive: KeepAlive) -> NoReturn:
    prctl = prctl_function()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != daemon_pid:  # the daemon died before prctl
        os._exit(EXIT_SETUP_FAILED)
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sig.pthread_sigmask(signal.SIG_SETMASK, ())
    # Every object alive now moves to a generation the collector never scans, so a child
    # whose job triggers a collection does not touch (and copy) the server's pages.
    gc.collect()
    gc.freeze()
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    kids: dict[int, _Kid] = {}  # by pidfd
    while True:
        for key, _ in sel.select():
            if key.data is None:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_PACKET, 1)
                except OSError:
                    data, fds = b"", []
                if not data:  # the daemon closed the socket (or died): children go too
                    os._exit(0)
                if fds:
                    _start_worker(app, sock, sel, kids, data, fds[0], prctl, keepalive)
                else:
                    _answer(app, sock, sel, kids, data, prctl, keepalive)
            elif key.fd == key.data.pidfd:
                _reap(sel, kids, key.data)
            else:  # room in a message pipe for an exit record
                _flush_exit(sel, key.data)


def _answer(
    app: App,
    sock: socket.socket,
    sel: selectors.DefaultSelector,
    kids: dict[int, _Kid],
    data: bytes,
    prctl: Any,
    keepalive: KeepAlive,
) -> None:
    try:
        spec = RunSpec.from_json(data)
        job = app.get_job(spec.job_name)
        kid, fds = _fork(job, spec, sock, sel, kids, prctl, keepalive)
    except Exception as exc:
        sock.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return
    try:
        socket.send_fds(sock, [json.dumps({"pid": kid.pid}).encode()], fds)
    finally:
        for fd in fds:
            os.close(fd)
    kids[kid.pidfd] = kid
    sel.register(kid.pidfd, selectors.EVENT_READ, kid)


def _fork(
    job: Any,
    spec: RunSpec,
    sock: socket.socket,
    sel: selectors.DefaultSelector,
    kids: dict[int, _Kid],
    prctl: Any,
    keepalive: KeepAlive,
) -> tuple[_Kid, list[int]]:
    fds = open_pipes()
    msg_r, msg_w, out_r, out_w, err_r, err_w = fds
    server_pid = os.getpid()
    # Everything the server holds that the child must not: other children's pipes and
    # pidfds, the socket, the selector.
    inherited = [sock.fileno(), sel.fileno(), msg_r, out_r, err_r]
    for other in kids.values():
        inherited += other.fds()
    try:
        pid = fork_blocked()
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if pid == 0:
        try:
            child_main(
                job,
                spec,
                msg_w=msg_w,
                out_w=out_w,
                err_w=err_w,
                parent_fds=tuple(inherited),
                parent_pid=server_pid,
                prctl=prctl,
                after_fork=None,
                monotonic=time.monotonic,
                now=utcnow,
                keepalive=keepalive,
            )
        finally:
            os._exit(EXIT_SETUP_FAILED)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    os.close(out_w)
    os.close(err_w)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        # Without a pidfd the child cannot be watched: stop it and report the failure.
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        for fd in (msg_r, msg_w, out_r, err_r):
            os.close(fd)
        raise
    return _Kid(pid, pidfd, msg_w), [msg_r, out_r, err_r]


def _start_worker(
    app: App,
    sock: socket.socket,
    sel: selectors.DefaultSelector,
    kids: dict[int, _Kid],
    data: bytes,
    ctl: int,
    prctl: Any,
    keepalive: KeepAlive,
) -> None:
    """Fork a pool worker on the socket end ``ctl`` (kept: see ``_reap``)."""
    try:
        options = json.loads(data)["worker"]
        max_runs, max_rss = int(options["max_runs"]), int(options["max_rss"])
        inherited = [sock.fileno(), sel.fileno()]
        for other in kids.values():
            inherited += other.fds()
        server_pid = os.getpid()
        pid = fork_blocked()
        if pid == 0:
            try:
                worker_main(
                    app,
                    ctl,
                    parent_fds=tuple(inherited),
                    parent_pid=server_pid,
                    prctl=prctl,
                    keepalive=keepalive,
                    max_runs=max_runs,
                    max_rss=max_rss,
                )
            finally:
                os._exit(EXIT_SETUP_FAILED)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            raise
    except Exception as exc:
        with contextlib.suppress(OSError):
            os.write(ctl, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        os.close(ctl)
        return
    kid = _Kid(pid, pidfd, ctl=ctl)
    kids[pidfd] = kid
    sel.register(pidfd, selectors.EVENT_READ, kid)


def _reap(sel: selectors.BaseSelector, kids: dict[int, _Kid], kid: _Kid) -> None:
    # Peek first: while the child is a zombie its pid cannot be reused, so its group can
    # be killed safely (processes the job left behind).
    with contextlib.suppress(ChildProcessError):
        info = os.waitid(os.P_PID, kid.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        if info is None or info.si_pid == 0:
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(kid.pid, signal.SIGKILL)
    try:
        _, status = os.waitpid(kid.pid, 0)
    except ChildProcessError:
        status = -1
    sel.unregister(kid.pidfd)
    os.close(kid.pidfd)
    del kids[kid.pidfd]
    if kid.ctl >= 0:  # a pool worker: its status goes to the daemon's end of its socket
        with contextlib.suppress(OSError):
            os.set_blocking(kid.ctl, False)
            os.write(kid.ctl, b'{"k": "exit", "w": %d}' % status)
        os.close(kid.ctl)
        return
    # A leading newline ends any message the child left unfinished.
    kid.pending = b'\n{"k": "exit", "w": %d}\n' % status
    os.set_blocking(kid.msg_w, False)  # only the server holds it now
    _flush_exit(sel, kid, registered=False)


def _flush_exit(sel: selectors.BaseSelector, kid: _Kid, *, registered: bool = True) -> None:
    try:
        while kid.pending:
            kid.pending = kid.pending[os.write(kid.msg_w, kid.pending) :]
    except BlockingIOError:
        if not registered:  # the daemon has not read the pipe yet: wait for room
            sel.register(kid.msg_w, selectors.EVENT_WRITE, kid)
        return
    except OSError:
        pass  # the daemon closed its end: nobody to tell
    if registered:
        sel.unregister(kid.msg_w)
    os.close(kid.msg_w)
