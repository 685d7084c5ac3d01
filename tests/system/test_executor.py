"""The executor: real forked children, driven by a selectors loop like the daemon's."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobsys.definitions import App
from jobsys.errors import DefinitionError
from jobsys.executor import MAX_LOG_LINES, Child, Executor, LogLine, Outcome, RunSpec
from jobsys.forkserver import ForkServer

app = App("executor-tests")


@app.job(group="t")
def ok(ctx: Any) -> None:
    ctx.log.info("starting")
    ctx.log.debug("a debug line")
    ctx.log.warning("a warning line")
    print("hello from print")
    print("to stderr", file=sys.stderr)
    ctx.log.info("params=" + json.dumps(ctx.params, sort_keys=True))
    for i in range(1, 6):
        ctx.progress(i, 5)
    ctx.log.info("done")


@app.job(group="t")
def context(ctx: Any) -> None:
    ctx.log.info(
        json.dumps(
            {
                "run_id": ctx.run_id,
                "batch_id": ctx.batch_id,
                "job_name": ctx.job_name,
                "trigger": ctx.trigger,
                "schedule_id": ctx.schedule_id,
                "scheduled_for": ctx.scheduled_for.isoformat() if ctx.scheduled_for else None,
                "database_url": ctx.database_url,
                "cancelled": ctx.cancelled,
                "own_group": os.getpgrp() == os.getpid(),
                "stdin_empty": os.read(0, 1) == b"",
            }
        )
    )


@app.job(group="t")
def boom(ctx: Any) -> None:
    ctx.log.info("about to fail")
    raise RuntimeError("boom")


@app.job(group="t")
def exit3(ctx: Any) -> None:
    sys.exit(3)


@app.job(group="t")
def interrupted(ctx: Any) -> None:
    raise KeyboardInterrupt


@app.job(group="t")
def segv(ctx: Any) -> None:
    ctx.log.info("about to crash")
    ctypes.string_at(0)


@app.job(group="t")
def exit7(ctx: Any) -> None:
    os._exit(7)


@app.job(group="t")
def oom(ctx: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.job(group="t")
def hang(ctx: Any) -> None:
    ctx.log.info("hanging")
    time.sleep(60)


@app.job(group="t")
def stubborn(ctx: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.log.info("ignoring SIGTERM")
    time.sleep(60)


@app.job(group="t")
def cooperative(ctx: Any) -> None:
    ctx.log.info("looping")
    while not ctx.cancelled:
        time.sleep(0.01)
    ctx.log.info("saw cancellation")


@app.job(group="t")
def cooperative_but_stuck(ctx: Any) -> None:
    # Reads the flag (so SIGTERM only sets it) and then ignores it. Not "if not
    # ctx.cancelled: sleep": on a loaded machine the timeout's SIGTERM may come before the
    # job starts, and such a job would then return at once (exit 0, no SIGKILL to test).
    _ = ctx.cancelled
    time.sleep(60)


@app.job(group="t")
def spawner(ctx: Any) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    ctx.log.info(f"grandchild {proc.pid}")
    proc.wait()
    time.sleep(60)


@app.job(group="t")
def leaves_orphan(ctx: Any) -> None:
    proc = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL)
    ctx.log.info(f"grandchild {proc.pid}")


@app.job(group="t")
def outputs(ctx: Any) -> None:
    logging.getLogger("jobsys.test").warning("via logging")
    subprocess.run(["sh", "-c", "echo from-subprocess; echo sub-err >&2"], check=True)
    os.write(1, b"raw fd line\n")
    sys.stdout.write("partial line without newline")


@app.job(group="t")
def flood(ctx: Any) -> None:
    chunk = b"x" * 1023 + b"\n"
    for _ in range(5 * 1024):  # 5 MiB through the capture pipe
        os.write(1, chunk)
    for i in range(MAX_LOG_LINES + 50):
        print(f"line {i}")
    os.write(1, b"y" * 100_000 + b"\n")


@app.job(group="t")
def long_line(ctx: Any) -> None:
    os.write(1, b"z" * 50_000 + b"\nafter\n")
    print("p" * 20_000)


@app.job(group="t")
def progress_burst(ctx: Any) -> None:
    for i in range(1, 100_001):
        ctx.progress(i, 100_000)
    ctx.progress(7)


@app.job(group="t")
async def async_job(ctx: Any) -> None:
    import asyncio

    await asyncio.sleep(0.01)
    ctx.log.info("async done")


@app.job(group="t")
def env_probe(ctx: Any) -> None:
    ctx.log.info(os.environ.get("JOBSYS_TEST_AFTER_FORK", "unset"))


@app.job(group="t")
def no_newline(ctx: Any) -> None:
    os.write(1, b"tail without newline")
    os._exit(0)


@app.job(group="t")
def noop(ctx: Any) -> None:
    pass


@app.job(group="t")
def sleepy(ctx: Any) -> None:
    time.sleep(0.05)


@app.job(group="t")
def probe_state(ctx: Any) -> None:
    """What a run finds of the process-wide state a previous run may have changed."""
    root = logging.getLogger()
    handler = signal.getsignal(signal.SIGUSR1)
    ctx.log.info(
        json.dumps(
            {
                "cwd": os.getcwd(),
                "env": os.environ.get("JOBSYS_TEST_LEFT_BEHIND"),
                "root_handlers": [type(h).__name__ for h in root.handlers],
                "root_level": root.level,
                "sigusr1": handler if isinstance(handler, int) else "python handler",
                "stdout": type(sys.stdout).__name__,
                "umask": os.umask(0o022),
            }
        )
    )


@app.job(group="t")
def change_state(ctx: Any) -> None:
    """Changes what a job commonly changes, and leaves it so."""
    os.chdir(ctx.params["dir"])
    os.environ["JOBSYS_TEST_LEFT_BEHIND"] = "yes"
    logging.getLogger().addHandler(logging.StreamHandler())
    logging.getLogger().setLevel(logging.DEBUG)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    os.umask(0o077)


@app.job(group="t")
def leaves_session(ctx: Any) -> None:
    """A subprocess that left the run's process group (its own session)."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    ctx.log.info(f"grandchild {proc.pid}")


@app.job(group="t")
def leaves_talker(ctx: Any) -> None:
    """A subprocess in its own session that keeps writing to the run's stdout."""
    subprocess.Popen(
        ["sh", "-c", "while :; do echo talker; done"], start_new_session=True, stdin=-3
    )
    time.sleep(0.2)


@app.job(group="t")
def raw_partial(ctx: Any) -> None:
    os.write(1, b"raw partial")


@app.job(group="t")
def raw_line(ctx: Any) -> None:
    os.write(1, b"next\n")


@app.job(group="t")
def leaves_thread(ctx: Any) -> None:
    import threading

    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()


@app.job(group="t", isolation="process")
def fresh(ctx: Any) -> None:
    pass


# -- helpers ----------------------------------------------------------------------------

GRACE = 0.5


@dataclass
class Finished:
    outcome: Outcome
    lines: list[LogLine] = field(default_factory=list)
    progress: list[tuple[int, int | None]] = field(default_factory=list)
    elapsed: float = 0.0

    def messages(self, level: str | None = None) -> list[str]:
        return [line.message for line in self.lines if level is None or line.level == level]

    def text(self) -> str:
        return "\n".join(f"{line.level} {line.message}" for line in self.lines)


def spec(job: str, run_id: int = 1, timeout: float | None = None, **params: Any) -> RunSpec:
    return RunSpec(
        run_id=run_id,
        batch_id=10,
        job_name=job,
        params=params,
        trigger="MANUAL",
        schedule_id=None,
        scheduled_for=None,
        database_url="sqlite:///unused.db",
        timeout_s=timeout,
    )


def run_loop(
    executor: Executor,
    specs: Iterable[RunSpec],
    *,
    concurrency: int = 8,
    limit: float = 20.0,
) -> dict[int, Finished]:
    """A miniature of the daemon's loop: one selector, deadlines, poll then drain."""
    pending = list(specs)
    sel = selectors.DefaultSelector()
    running: dict[int, tuple[Child, Finished, float]] = {}
    done: dict[int, Finished] = {}
    end = time.monotonic() + limit
    try:
        while pending or running:
            while pending and len(running) < concurrency:
                child = executor.start(pending.pop(0))
                sel.register(child, selectors.EVENT_READ, child)
                running[child.run_id] = (
                    child,
                    Finished(Outcome("?", None, None, 0)),
                    time.monotonic(),
                )
            now = time.monotonic()
            assert now < end, f"runs still going after {limit}s: {_stuck_report(running)}"
            deadlines = [d for c, _, _ in running.values() if (d := c.next_deadline()) is not None]
            timeout = min([end, *deadlines]) - now
            ready = [key.data for key, _ in sel.select(max(0.0, timeout))]
            now = time.monotonic()
            due = [c for c, _, _ in running.values() if (d := c.next_deadline()) and d <= now]
            for child in dict.fromkeys([*ready, *due]):
                assert child.run_id in running, f"event for a finished child: {child}"
                _, fin, started = running[child.run_id]
                outcome = child.poll()
                lines, progress = child.drain()
                fin.lines.extend(lines)
                if progress is not None:
                    fin.progress.append(progress)
                if outcome is not None:
                    sel.unregister(child)
                    child.close()
                    fin.outcome = outcome
                    fin.elapsed = time.monotonic() - started
                    lines, progress = child.drain()
                    assert lines == [] and progress is None
                    done[child.run_id] = fin
                    del running[child.run_id]
    finally:
        for child, _, _ in running.values():
            sel.unregister(child)
            child.close()  # kills and reaps
        sel.close()
    return done


def _stuck_report(running: dict[int, tuple[Child, Finished, float]]) -> str:
    """What each run still going was doing: its process's state, then the Python stack
    faulthandler writes to its stderr pipe on SIGABRT (so that a run that hangs once in a
    CI run says where)."""
    parts = []
    for run_id, (child, fin, _) in sorted(running.items()):
        state = ""
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{child.pid}/status").read_text()
            state = next((ln for ln in status.splitlines() if ln.startswith("State:")), "")
            state += " wchan=" + Path(f"/proc/{child.pid}/wchan").read_text()
        with contextlib.suppress(OSError):
            os.kill(child.pid, signal.SIGABRT)
        end = time.monotonic() + 2
        while time.monotonic() < end and child.poll() is None:
            time.sleep(0.05)
            fin.lines.extend(child.drain()[0])
        fin.lines.extend(child.drain()[0])
        parts.append(f"run {run_id} (pid {child.pid}, {state}):\n{fin.text()}")
    return "\n".join(parts)


def run_one(executor: Executor, run: RunSpec, limit: float = 20.0) -> Finished:
    return run_loop(executor, [run], limit=limit)[run.run_id]


def wait_for_line(child: Child, fin: Finished, text: str, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not any(text in m for m in fin.messages()):
        assert time.monotonic() < end, f"no line with {text!r}: {fin.text()}"
        assert child.poll() is None, f"child ended early: {fin.text()}"
        lines, _ = child.drain()
        fin.lines.extend(lines)
        time.sleep(0.01)


def finish(child: Child, fin: Finished, limit: float = 10.0) -> Finished:
    end = time.monotonic() + limit
    sel = selectors.DefaultSelector()
    sel.register(child, selectors.EVENT_READ)
    try:
        while True:
            outcome = child.poll()
            lines, progress = child.drain()
            fin.lines.extend(lines)
            if progress is not None:
                fin.progress.append(progress)
            if outcome is not None:
                sel.unregister(child)
                child.close()
                fin.outcome = outcome
                return fin
            now = time.monotonic()
            assert now < end, f"child still running: {fin.text()}"
            deadline = child.next_deadline()
            sel.select(max(0.0, min(end, deadline if deadline is not None else end) - now))
    finally:
        sel.close()


def process_gone(pid: int, limit: float = 5.0) -> bool:
    """Gone or a zombie (an orphan's reaper may be slow, or absent, in containers)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):  # gone before or while read
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def grandchild_pid(fin: Finished) -> int:
    line = next(m for m in fin.messages() if m.startswith("grandchild "))
    return int(line.split()[1])


@pytest.fixture(params=["fork", "process", "pool"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Each test in three ways: a fresh process per run forked by this process (the
    fallback) or by the fork server (``isolation="process"``), and warm pool workers
    forked by the fork server (``isolation="pool"``, the default)."""
    server = ForkServer.start(app) if request.param != "fork" else None
    isolation = "process" if request.param == "process" else "pool"
    ex = Executor(app, kill_grace_s=GRACE, server=server, isolation=isolation, pool_size=2)
    try:
        yield ex
    finally:
        ex.close()


# -- tests ------------------------------------------------------------------------------


def test_success_with_logs_progress_print_and_params(executor: Executor) -> None:
    fin = run_one(executor, spec("ok", size=3, name="x"))
    assert fin.outcome.status == "SUCCESS", fin.text()
    assert fin.outcome.error is None
    assert fin.outcome.exit_code == 0
    assert fin.outcome.duration_ms >= 0
    assert [(line.level, line.message) for line in fin.lines] == [
        ("INFO", "starting"),
        ("DEBUG", "a debug line"),
        ("WARNING", "a warning line"),
        ("INFO", "hello from print"),
        ("ERROR", "to stderr"),
        ("INFO", 'params={"name": "x", "size": 3}'),
        ("INFO", "done"),
    ]
    assert fin.progress and fin.progress[-1] == (5, 5)
    for line in fin.lines:
        assert line.ts.tzinfo is not None
        assert abs((datetime.now(UTC) - line.ts).total_seconds()) < 30
    assert fin.lines == sorted(fin.lines, key=lambda line: line.ts)


def test_a_daemon_with_its_own_signal_handlers_still_runs_jobs(executor: Executor) -> None:
    # An application may install handlers (SIGHUP, SIGUSR1) at import; the child resets
    # them before the job runs.
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    try:
        fin = run_one(executor, spec("ok", size=1, name="y"))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert fin.outcome.status == "SUCCESS", fin.text()


def test_context_fields(executor: Executor) -> None:
    slot = datetime(2027, 1, 1, 10, 0, tzinfo=UTC)
    run = RunSpec(
        run_id=42,
        batch_id=7,
        job_name="context",
        params={},
        trigger="SCHEDULE",
        schedule_id="nightly",
        scheduled_for=slot,
        database_url="mysql://u@h/db",
        timeout_s=None,
    )
    child = executor.start(run)
    assert (child.run_id, child.job_name, child.pid > 0) == (42, "context", True)
    assert child.started_at.tzinfo is not None
    fin = finish(child, Finished(Outcome("?", None, None, 0)))
    assert fin.outcome.status == "SUCCESS", fin.text()
    assert json.loads(fin.messages("INFO")[0]) == {
        "run_id": 42,
        "batch_id": 7,
        "job_name": "context",
        "trigger": "SCHEDULE",
        "schedule_id": "nightly",
        "scheduled_for": slot.isoformat(),
        "database_url": "mysql://u@h/db",
        "cancelled": False,
        "own_group": True,
        "stdin_empty": True,
    }


def test_unknown_job_is_a_definition_error(executor: Executor) -> None:
    with pytest.raises(DefinitionError, match="unknown job"):
        executor.start(spec("nope"))


def test_exception_fails_with_type_and_message_and_traceback(executor: Executor) -> None:
    fin = run_one(executor, spec("boom"))
    assert (fin.outcome.status, fin.outcome.error) == ("FAILED", "RuntimeError: boom")
    assert fin.outcome.exit_code == 1
    errors = fin.messages("ERROR")
    assert any(
        "Traceback (most recent call last)" in m and 'raise RuntimeError("boom")' in m
        for m in errors
    ), fin.text()
    assert fin.messages("INFO") == ["about to fail"]


def test_sys_exit_fails(executor: Executor) -> None:
    fin = run_one(executor, spec("exit3"))
    assert (fin.outcome.status, fin.outcome.error) == ("FAILED", "job called sys.exit(3)")


def test_keyboard_interrupt_fails(executor: Executor) -> None:
    fin = run_one(executor, spec("interrupted"))
    assert fin.outcome.status == "FAILED"
    assert "KeyboardInterrupt" in (fin.outcome.error or "")


def test_segfault_names_sigsegv_and_logs_faulthandler_output(executor: Executor) -> None:
    fin = run_one(executor, spec("segv"))
    assert fin.outcome.status == "FAILED"
    assert fin.outcome.error == "killed by signal SIGSEGV (segmentation fault)"
    assert fin.outcome.exit_code == -signal.SIGSEGV
    errors = "\n".join(fin.messages("ERROR"))
    assert "Fatal Python error: Segmentation fault" in errors, fin.text()
    assert "segv" in errors  # the job's frame in the dump


def test_os_exit_without_result(executor: Executor) -> None:
    fin = run_one(executor, spec("exit7"))
    assert fin.outcome.status == "FAILED"
    assert fin.outcome.error == "exited with code 7 without reporting a result"
    assert fin.outcome.exit_code == 7


def test_sigkill_from_outside_reads_as_oom(executor: Executor) -> None:
    fin = run_one(executor, spec("oom"))
    assert (fin.outcome.status, fin.outcome.error) == (
        "FAILED",
        "killed by SIGKILL (out of memory?)",
    )
    assert fin.outcome.exit_code == -signal.SIGKILL


def test_timeout_kills_a_hang(executor: Executor) -> None:
    fin = run_one(executor, spec("hang", timeout=1))
    assert (fin.outcome.status, fin.outcome.error) == ("FAILED", "timed out after 1s")
    # It never read ctx.cancelled: SIGTERM interrupts it at once (no wait for the grace).
    assert fin.outcome.exit_code == 1
    assert 1.0 <= fin.outcome.duration_ms / 1000 < 1.0 + GRACE + 0.5  # exit 1: no SIGKILL
    assert fin.messages("INFO") == ["hanging"]
    assert any("stopped by SIGTERM" in m and "time.sleep(60)" in m for m in fin.messages())


def test_timeout_gives_a_cooperative_job_the_grace_then_kills_it(executor: Executor) -> None:
    # On a loaded machine (CI's workers on 2 CPUs) the SIGTERM may even come before the
    # job starts: cooperative_but_stuck is stuck either way.
    fin = run_one(executor, spec("cooperative_but_stuck", timeout=1.5))
    assert (fin.outcome.status, fin.outcome.error) == ("FAILED", "timed out after 1.5s")
    assert fin.outcome.exit_code == -signal.SIGKILL
    assert 1.5 + GRACE <= fin.outcome.duration_ms / 1000 < 1.5 + GRACE + 1.0


def test_timeout_kills_a_job_that_ignores_sigterm(executor: Executor) -> None:
    fin = run_one(executor, spec("stubborn", timeout=1.5))
    assert (fin.outcome.status, fin.outcome.error) == ("FAILED", "timed out after 1.5s")
    assert fin.outcome.exit_code == -signal.SIGKILL
    assert 1.5 + GRACE <= fin.outcome.duration_ms / 1000 < 1.5 + GRACE + 1.0


def test_cancel_cooperative_job(executor: Executor) -> None:
    child = executor.start(spec("cooperative"))
    fin = Finished(Outcome("?", None, None, 0))
    wait_for_line(child, fin, "looping")
    t0 = time.monotonic()
    child.cancel("by admin")
    child.cancel("twice")  # no effect
    fin = finish(child, fin)
    assert (fin.outcome.status, fin.outcome.error) == ("CANCELLED", "cancelled: by admin")
    assert fin.outcome.exit_code == 0
    assert time.monotonic() - t0 < GRACE
    assert "saw cancellation" in fin.messages("INFO")


def test_cancel_kills_the_jobs_subprocesses(executor: Executor) -> None:
    child = executor.start(spec("spawner"))
    fin = Finished(Outcome("?", None, None, 0))
    wait_for_line(child, fin, "grandchild ")
    pid = grandchild_pid(fin)
    assert not process_gone(pid, limit=0.1)
    child.cancel("stop")
    fin = finish(child, fin)
    assert (fin.outcome.status, fin.outcome.error) == ("CANCELLED", "cancelled: stop")
    assert process_gone(pid)


def test_processes_left_behind_are_killed(executor: Executor) -> None:
    fin = run_one(executor, spec("leaves_orphan"))
    assert fin.outcome.status == "SUCCESS"
    assert process_gone(grandchild_pid(fin))


def test_kill_at_once(executor: Executor) -> None:
    child = executor.start(spec("stubborn"))
    fin = Finished(Outcome("?", None, None, 0))
    wait_for_line(child, fin, "ignoring SIGTERM")
    child.kill()
    fin = finish(child, fin, limit=GRACE)
    assert (fin.outcome.status, fin.outcome.error) == ("FAILED", "killed by the daemon")
    assert fin.outcome.exit_code == -signal.SIGKILL


def test_cancel_after_the_end_changes_nothing(executor: Executor) -> None:
    child = executor.start(spec("noop"))
    fin = finish(child, Finished(Outcome("?", None, None, 0)))
    child.cancel("late")
    child.kill()
    assert child.poll() == fin.outcome
    assert fin.outcome.status == "SUCCESS"
    assert child.next_deadline() is None
    child.close()
    with pytest.raises(ValueError):
        child.fileno()


def test_output_from_logging_subprocesses_and_raw_fds(executor: Executor) -> None:
    fin = run_one(executor, spec("outputs"))
    assert fin.outcome.status == "SUCCESS", fin.text()
    got = {(line.level, line.message) for line in fin.lines}
    assert ("WARNING", "jobsys.test: via logging") in got
    assert ("INFO", "from-subprocess") in got
    assert ("ERROR", "sub-err") in got
    assert ("INFO", "raw fd line") in got
    assert ("INFO", "partial line without newline") in got


def test_floods_do_not_block_and_logs_are_capped(executor: Executor) -> None:
    fin = run_one(executor, spec("flood"), limit=60)
    assert fin.outcome.status == "SUCCESS"
    assert len(fin.lines) == MAX_LOG_LINES + 1
    assert fin.lines[-1].level == "WARNING"
    assert fin.lines[-1].message.startswith("log truncated")


def test_long_lines_are_cut(executor: Executor) -> None:
    fin = run_one(executor, spec("long_line"))
    assert fin.outcome.status == "SUCCESS"
    sizes = [(line.message[:1], len(line.message)) for line in fin.lines]
    assert ("a", len("after")) in sizes
    for line in fin.lines:
        assert len(line.message) <= 8192 + len(" [truncated]")
    assert any(m.startswith("z") and m.endswith("[truncated]") for m in fin.messages())
    assert any(m.startswith("p") and m.endswith("[truncated]") for m in fin.messages())


def test_progress_is_rate_limited_but_the_last_value_arrives(
    executor: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[bytes] = []
    on_message = Child._on_message

    def spy(self: Child, raw: bytes) -> None:
        if b'"progress"' in raw:
            sent.append(raw)
        on_message(self, raw)

    monkeypatch.setattr(Child, "_on_message", spy)
    t0 = time.monotonic()
    fin = run_one(executor, spec("progress_burst"))
    elapsed = time.monotonic() - t0
    assert fin.outcome.status == "SUCCESS"
    assert fin.progress[-1] == (7, None)  # drain() reports the latest value only
    # 100,001 calls: at most ~20 messages a second, plus the finishing (done == total)
    # one and the last pending one.
    assert 2 <= len(sent) <= 2 + 20 * elapsed + 1
    assert json.loads(sent[-2])["d"] == 100_000


def test_many_concurrent_runs(executor: Executor) -> None:
    runs = [spec("sleepy" if i % 2 else "noop", run_id=i) for i in range(50)]
    done = run_loop(executor, runs, concurrency=8)
    assert sorted(done) == list(range(50))
    assert {fin.outcome.status for fin in done.values()} == {"SUCCESS"}


@pytest.mark.parametrize("concurrency", [4, 8])
def test_throughput_of_noop_runs(executor: Executor, concurrency: int) -> None:
    n = 200
    t0 = time.perf_counter()
    # A few seconds on a quiet machine; the limit only stops a hang (run_loop's 20 s
    # default was passed twice with the machine's load average at 13).
    specs = (spec("noop", run_id=i) for i in range(n))
    done = run_loop(executor, specs, concurrency=concurrency, limit=60.0)
    elapsed = time.perf_counter() - t0
    assert len(done) == n
    assert {fin.outcome.status for fin in done.values()} == {"SUCCESS"}
    print(f"\n{n} no-op runs, {concurrency} at a time: {elapsed:.2f}s, {n / elapsed:.0f} runs/s")


def test_the_parent_is_unaffected(executor: Executor) -> None:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    group, stdout, stderr = os.getpgrp(), sys.stdout, sys.stderr

    def fds() -> set[str]:  # the pool's sockets to its workers are the executor's own
        pool = executor.pool.fds if executor.pool is not None else set()
        return set(os.listdir("/proc/self/fd")) - {str(fd) for fd in pool}

    fds_before = fds()
    for job in ("boom", "exit3", "segv", "exit7", "oom", "interrupted"):
        assert run_one(executor, spec(job)).outcome.status == "FAILED"
    assert run_one(executor, spec("hang", timeout=0.2)).outcome.status == "FAILED"
    assert run_one(executor, spec("ok")).outcome.status == "SUCCESS"
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == mask
    assert (os.getpgrp(), sys.stdout, sys.stderr) == (group, stdout, stderr)
    assert fds() == fds_before  # every fd closed


def test_async_job_is_awaited(executor: Executor) -> None:
    fin = run_one(executor, spec("async_job"))
    assert fin.outcome.status == "SUCCESS", fin.text()
    assert fin.messages("INFO") == ["async done"]


def test_sigint_interrupts_the_job(executor: Executor) -> None:
    child = executor.start(spec("hang"))
    fin = Finished(Outcome("?", None, None, 0))
    wait_for_line(child, fin, "hanging")
    os.kill(child.pid, signal.SIGINT)
    fin = finish(child, fin)
    assert (fin.outcome.status, fin.outcome.error) == (
        "FAILED",
        "interrupted (KeyboardInterrupt)",
    )


def test_after_fork_hook_runs_in_the_child_only() -> None:
    def hook() -> None:
        os.environ["JOBSYS_TEST_AFTER_FORK"] = "set in child"

    fin = run_one(Executor(app, after_fork=hook), spec("env_probe"))
    assert fin.messages("INFO") == ["set in child"]
    assert "JOBSYS_TEST_AFTER_FORK" not in os.environ

    def broken() -> None:
        raise OSError("no pool")

    fin = run_one(Executor(app, after_fork=broken), spec("env_probe"))
    assert (fin.outcome.status, fin.outcome.error) == (
        "FAILED",
        "could not run the job: OSError: no pool",
    )


def test_the_daemons_signal_handlers_and_wakeup_fd_stay_out_of_the_child(
    executor: Executor,
) -> None:
    """A daemon-like parent: a Python SIGTERM handler and a wakeup fd."""
    calls: list[int] = []
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    old_term = signal.signal(signal.SIGTERM, lambda s, f: calls.append(s))
    old_wakeup = signal.set_wakeup_fd(w)
    try:
        child = executor.start(spec("cooperative"))
        fin = Finished(Outcome("?", None, None, 0))
        wait_for_line(child, fin, "looping")
        child.cancel("test")  # SIGTERM reaches the child's own handler only
        fin = finish(child, fin)
        assert fin.outcome.status == "CANCELLED"
        with pytest.raises(BlockingIOError):
            os.read(r, 100)  # the child never wrote into the daemon's wakeup pipe
        assert calls == []
    finally:
        signal.set_wakeup_fd(old_wakeup)
        signal.signal(signal.SIGTERM, old_term)
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("server", [False, True])
def test_the_child_dies_with_the_daemon(server: bool) -> None:
    """If the daemon is killed, its running jobs do not live on (PR_SET_PDEATHSIG), nor
    does its fork server."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from jobsys.definitions import App
        from jobsys.executor import Executor, RunSpec
        from jobsys.forkserver import ForkServer

        app = App()

        @app.job(group="g")
        def hang(ctx):
            time.sleep(60)

        run = RunSpec(1, 1, "hang", {{}}, "MANUAL", None, None, "sqlite://", None)
        server = ForkServer.start(app) if {server} else None
        child = Executor(app, server=server).start(run)
        print(child.pid, server.pid if server else child.pid, flush=True)
        time.sleep(0.3)
        os._exit(0)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    child_pid, server_pid = (int(x) for x in out.stdout.split())
    assert process_gone(child_pid)
    assert process_gone(server_pid)


def test_a_dead_fork_server_is_replaced_by_forking_in_the_daemon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ForkServer.start(app)
    ex = Executor(app, kill_grace_s=GRACE, server=server)
    try:
        assert run_one(ex, spec("ok")).outcome.status == "SUCCESS"
        os.kill(server.pid, signal.SIGKILL)
        assert process_gone(server.pid)
        with caplog.at_level(logging.ERROR, logger="jobsys.executor"):
            fin = run_one(ex, spec("ok"))
        assert fin.outcome.status == "SUCCESS", fin.text()
        assert "the fork server failed" in caplog.text
        child = ex.start(spec("noop"))
        assert _parent_of(child.pid) == os.getpid()
        finish(child, Finished(Outcome("?", None, None, 0)))
    finally:
        ex.close()


def test_the_fork_server_is_the_parent_of_the_children() -> None:
    server = ForkServer.start(app)
    ex = Executor(app, kill_grace_s=GRACE, server=server)
    try:
        child = ex.start(spec("cooperative"))
        assert _parent_of(child.pid) == server.pid
        child.cancel("done")
        fin = finish(child, Finished(Outcome("?", None, None, 0)))
        assert fin.outcome.status == "CANCELLED"
    finally:
        ex.close()
    assert process_gone(server.pid)


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll only")
def test_a_finished_child_leaves_nothing_readable_in_the_loops_epoll(executor: Executor) -> None:
    """A child forked later holds copies of an earlier child's fds: closing them must not
    leave the earlier child registered (and readable) in the daemon's epoll."""
    outer = select.epoll()
    first = executor.start(spec("noop"))
    later = executor.start(spec("cooperative"))  # inherits copies of first's fds
    try:
        outer.register(first.fileno(), select.EPOLLIN)
        fin = Finished(Outcome("?", None, None, 0))
        end = time.monotonic() + 10
        while (outcome := first.poll()) is None:
            assert time.monotonic() < end
            outer.poll(1)
        fin.outcome = outcome
        assert first.poll() is outcome
        outer.unregister(first.fileno())
        first.close()
        assert outer.poll(0) == []
    finally:
        outer.close()
        later.cancel("done")
        finish(later, Finished(Outcome("?", None, None, 0)))


def test_close_on_a_running_child_kills_and_reaps_it(executor: Executor) -> None:
    child = executor.start(spec("stubborn"))
    fin = Finished(Outcome("?", None, None, 0))
    wait_for_line(child, fin, "ignoring SIGTERM")
    child.close()
    assert process_gone(child.pid, limit=0.1)
    outcome = child.poll()
    assert outcome is not None
    assert (outcome.status, outcome.error, outcome.exit_code) == (
        "FAILED",
        "killed by the daemon",
        -signal.SIGKILL,
    )
    assert child.drain() == ([], None)


def test_a_last_line_without_newline_is_kept(executor: Executor) -> None:
    fin = run_one(executor, spec("no_newline"))
    assert ("INFO", "tail without newline") in {(x.level, x.message) for x in fin.lines}


def test_a_drain_that_reads_the_servers_exit_record_leaves_the_child_readable() -> None:
    """The loop calls poll() then drain(); if drain() is what reads the fork server's exit
    record, the child's fd must stay readable so that the loop comes back to poll()."""
    ex = Executor(app, kill_grace_s=GRACE, server=ForkServer.start(app), isolation="process")
    try:
        child = ex.start(spec("noop"))
        end = time.monotonic() + 10
        while not process_gone(child.pid, limit=0.05):
            assert time.monotonic() < end
        time.sleep(0.2)  # the server reaps the child and writes the exit record
        child.drain()  # reads the record (and the pipe's end) before poll() does
        assert select.select([child.fileno()], [], [], 1.0)[0], "nothing left to wake the loop"
        outcome = child.poll()
        assert outcome is not None and outcome.status == "SUCCESS"
        child.close()
    finally:
        ex.close()


def test_a_drain_that_reads_a_pool_runs_exit_record_makes_poll_due() -> None:
    """The same in a pool worker, which stays alive after its run: nothing is readable
    after the exit record, so once drain() has read it, poll() is due at once (a loop
    that waited for a wake-up hung there: CI caught it twice; one that compared the
    deadline with a "now" read before asking spun until its limit: twice more)."""
    ex = Executor(app, kill_grace_s=GRACE, server=ForkServer.start(app), pool_size=1)
    try:
        child = ex.start(spec("noop"))
        end = time.monotonic() + 10
        while child.next_deadline() is None:  # drain() until the exit record is read
            assert time.monotonic() < end, "no exit record"
            select.select([child.fileno()], [], [], 0.05)
            child.drain()
        # Due at a "now" the loop read before asking: a deadline that moved with the
        # clock was never due in that comparison, and the loop spun till its limit.
        now = time.monotonic()
        time.sleep(0.001)
        deadline = child.next_deadline()
        assert deadline is not None and deadline <= now
        assert child.next_deadline() == deadline
        outcome = child.poll()
        assert outcome is not None and outcome.status == "SUCCESS"
        assert child.next_deadline() is None
        child.close()
    finally:
        ex.close()


# -- the warm pool --------------------------------------------------------------------


@pytest.fixture
def pool_of_one() -> Iterator[Executor]:
    """One warm worker, so that consecutive runs share it."""
    ex = Executor(app, kill_grace_s=GRACE, server=ForkServer.start(app), pool_size=1)
    try:
        yield ex
    finally:
        ex.close()


def run_pid(executor: Executor, run: RunSpec) -> tuple[int, Finished]:
    child = executor.start(run)
    return child.pid, finish(child, Finished(Outcome("?", None, None, 0)))


def test_a_worker_restores_what_a_job_changed_before_the_next_run(
    pool_of_one: Executor, tmp_path: Path
) -> None:
    pid, before = run_pid(pool_of_one, spec("probe_state"))
    assert before.outcome.status == "SUCCESS", before.text()
    same, changed = run_pid(pool_of_one, spec("change_state", dir=str(tmp_path)))
    assert changed.outcome.status == "SUCCESS", changed.text()
    again, after = run_pid(pool_of_one, spec("probe_state"))
    assert after.outcome.status == "SUCCESS", after.text()
    assert pid == same == again  # one worker ran all three
    assert json.loads(after.messages()[0]) == json.loads(before.messages()[0])
    assert json.loads(after.messages()[0])["env"] is None
    assert "JOBSYS_TEST_LEFT_BEHIND" not in os.environ  # nor did it reach this process


def test_a_runs_output_never_reaches_the_next_run_in_the_same_worker(
    pool_of_one: Executor,
) -> None:
    """A worker's pipes serve all its runs: what a run (and the processes it left, killed
    when it ends) wrote is all its own, a last line without newline included."""
    pid, first = run_pid(pool_of_one, spec("leaves_talker"))
    assert first.outcome.status == "SUCCESS", first.text()
    assert "talker" in first.messages("INFO")
    same, partial = run_pid(pool_of_one, spec("raw_partial"))
    assert partial.messages() == ["raw partial"], partial.text()
    for _ in range(3):
        same, second = run_pid(pool_of_one, spec("raw_line"))
        assert same == pid, "one worker ran every run"
        assert second.messages() == ["next"], second.text()


@pytest.mark.parametrize("job", ["exit7", "segv", "oom"])
def test_a_crashed_worker_is_replaced_and_the_next_run_succeeds(
    pool_of_one: Executor, job: str
) -> None:
    pid, _ = run_pid(pool_of_one, spec("noop"))
    crashed, fin = run_pid(pool_of_one, spec(job))
    assert crashed == pid
    assert fin.outcome.status == "FAILED" and fin.outcome.exit_code != 0, fin.text()
    assert process_gone(pid)
    new, fin = run_pid(pool_of_one, spec("ok"))
    assert fin.outcome.status == "SUCCESS", fin.text()
    assert new != pid


def test_a_worker_killed_from_outside_fails_only_its_run() -> None:
    ex = Executor(app, kill_grace_s=GRACE, server=ForkServer.start(app), pool_size=2)
    try:
        victim = ex.start(spec("hang", run_id=1))
        bystander = ex.start(spec("cooperative", run_id=2))
        assert victim.pid != bystander.pid
        fin = Finished(Outcome("?", None, None, 0))
        wait_for_line(victim, fin, "hanging")
        other = Finished(Outcome("?", None, None, 0))
        wait_for_line(bystander, other, "looping")
        os.kill(victim.pid, signal.SIGKILL)  # as the kernel's OOM killer would
        fin = finish(victim, fin)
        assert (fin.outcome.status, fin.outcome.error) == (
            "FAILED",
            "killed by SIGKILL (out of memory?)",
        )
        assert bystander.poll() is None  # untouched
        bystander.cancel("done")
        other = finish(bystander, other)
        assert other.outcome.status == "CANCELLED"
        assert "saw cancellation" in other.messages()
        pid, fin = run_pid(ex, spec("ok", run_id=3))
        assert fin.outcome.status == "SUCCESS"
        assert pid != victim.pid
    finally:
        ex.close()


def test_a_worker_is_recycled_after_max_runs() -> None:
    ex = Executor(
        app, kill_grace_s=GRACE, server=ForkServer.start(app), pool_size=1, worker_max_runs=3
    )
    try:
        pids = [run_pid(ex, spec("noop", run_id=i))[0] for i in range(7)]
    finally:
        ex.close()
    assert pids[0] == pids[1] == pids[2] != pids[3]
    assert pids[3] == pids[4] == pids[5] != pids[6]
    assert process_gone(pids[0])  # it exited, and was reaped


def test_a_worker_is_recycled_when_its_memory_passes_the_limit() -> None:
    ex = Executor(
        app, kill_grace_s=GRACE, server=ForkServer.start(app), pool_size=1, worker_max_rss=1
    )
    try:
        pids = [run_pid(ex, spec("noop", run_id=i)) for i in range(3)]
    finally:
        ex.close()
    assert {fin.outcome.status for _, fin in pids} == {"SUCCESS"}
    assert len({pid for pid, _ in pids}) == 3


def test_a_thread_left_running_retires_the_worker(pool_of_one: Executor) -> None:
    pid, fin = run_pid(pool_of_one, spec("leaves_thread"))
    assert fin.outcome.status == "SUCCESS"
    assert process_gone(pid)
    assert run_pid(pool_of_one, spec("noop"))[0] != pid


def test_a_subprocess_that_left_the_runs_group_is_killed_at_its_end(
    pool_of_one: Executor,
) -> None:
    pid, fin = run_pid(pool_of_one, spec("leaves_session"))
    assert fin.outcome.status == "SUCCESS", fin.text()
    assert process_gone(grandchild_pid(fin), limit=0.5)  # gone before the outcome, in fact
    assert run_pid(pool_of_one, spec("noop"))[0] == pid  # the worker itself lives on


def test_a_job_can_ask_for_a_fresh_process(pool_of_one: Executor) -> None:
    assert pool_of_one.isolation_of("fresh") == "process"
    assert pool_of_one.isolation_of("noop") == "pool"
    worker, _ = run_pid(pool_of_one, spec("noop"))
    first, fin = run_pid(pool_of_one, spec("fresh"))
    assert fin.outcome.status == "SUCCESS"
    second, _ = run_pid(pool_of_one, spec("fresh"))
    assert len({worker, first, second}) == 3
    assert process_gone(first)


def test_a_drain_that_reads_a_workers_death_leaves_the_child_readable(
    pool_of_one: Executor,
) -> None:
    """As above, for the fork server's record of a pool worker's death (on the worker's
    socket): drain() reading it must not leave the loop without a reason to poll()."""
    child = pool_of_one.start(spec("exit7"))
    end = time.monotonic() + 10
    while not process_gone(child.pid, limit=0.05):
        assert time.monotonic() < end
    time.sleep(0.2)  # the server reaps the worker and writes the record
    child.drain()
    child.drain()  # the pipes' ends, then the record
    assert select.select([child.fileno()], [], [], 1.0)[0], "nothing left to wake the loop"
    outcome = child.poll()
    assert outcome is not None
    assert outcome.error == "exited with code 7 without reporting a result"
    child.close()
