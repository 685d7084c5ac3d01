"""Making a process for a run: fork, pipes, process group, death signal, keep-alive.

Used by the daemon's executor (which forks from the daemon) and by the fork server
(which forks for it); the process forked runs ``runtime.child_main``. Nothing here
knows about jobs, logs or outcomes, and this module imports nothing from jobsys.

Rules every fork follows: signals stay blocked across the fork (``fork_blocked``), so
none reaches the child before it has replaced its parent's handlers; the child gets its
own process group (cancel and timeout signal the whole group, so the job's subprocesses
go too; Ctrl-C at the daemon's terminal does not reach jobs), dies with its parent
(Linux ``PR_SET_PDEATHSIG``), closes what it inherited from the parent that it must not
hold, and reads stdin from /dev/null (``enter_child``).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import signal
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1
#: The C functions under ``signal`` (same API; no enum conversion of each returned
#: signal number, which made ``pthread_sigmask``/``getsignal`` the costliest part of a
#: fork: about 0.4 ms per run).
sig: Any = sys.modules.get("_signal", signal)
ALL_SIGNALS = frozenset(int(s) for s in signal.valid_signals())
#: The exit code of a forked process whose setup failed before it could report.
EXIT_SETUP_FAILED = 70


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


def prctl_function() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux (for ``PR_SET_PDEATHSIG``), else None."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            return ctypes.CDLL(None, use_errno=True).prctl
    return None


def fork_blocked() -> int:
    """``os.fork()`` with every signal blocked across it: the parent's mask is restored
    in the parent (also if the fork fails); the child starts with all signals blocked
    and unblocks them once its own handlers are in place."""
    old_mask = sig.pthread_sigmask(signal.SIG_BLOCK, ALL_SIGNALS)
    try:
        pid = os.fork()
    except BaseException:
        sig.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        raise
    if pid != 0:
        sig.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return pid


def enter_child(
    *,
    out_w: int,
    err_w: int,
    parent_fds: tuple[int, ...],
    parent_pid: int,
    prctl: Callable[..., int] | None,
) -> None:
    """In a process just forked for a run: its own process group, death with the
    parent, the parent's fds closed, stdin from /dev/null, fds 1 and 2 onto the
    capture pipes' write ends ``out_w``/``err_w`` (closed after)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl
            os._exit(EXIT_SETUP_FAILED)
    for fd in parent_fds:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)


#: Linux: orphaned descendants are re-parented to this process instead of init.
PR_SET_CHILD_SUBREAPER = 36


def _children() -> list[int]:
    """This process's child pids (every thread's), from /proc."""
    kids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children", "rb") as f:
                kids.extend(int(x) for x in f.read().split())
        return kids
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN: scan /proc
        pass
    me = str(os.getpid()).encode()
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, IndexError), open(f"/proc/{name}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[1] == me:
                    kids.append(int(name))
    return kids


def kill_descendants() -> int:
    """SIGKILL and reap every process below this one; the number killed.

    The caller is a child subreaper (``PR_SET_CHILD_SUBREAPER``): when a child dies, its
    own children come back to the caller, so killing level by level reaches every
    descendant, also those that left the process group (``setsid``, double forks)."""
    killed = 0
    for _ in range(10_000):  # a fork bomb cannot keep this going forever
        kids = _children()
        if not kids:
            break
        for pid in kids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in kids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        killed += len(kids)
    return killed
