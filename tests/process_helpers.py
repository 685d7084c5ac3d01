"""Running real ``jobsys`` processes (daemon, CLI) in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from jobsys.store.models import WorkerInstance

ROOT = Path(__file__).resolve().parent.parent


def jobsys_env(db_url: str, **extra: str) -> dict[str, str]:
    # Without PYTHONDONTWRITEBYTECODE: the suite starts hundreds of jobsys processes, and
    # each compiling jobsys from source again costs a tenth of a second of CPU.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JOBSYS_", "SCHEDULE_", "DATABASE_URL", "LOCK_"))
        and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=db_url,
        JOBSYS_WAKE_HOST="127.0.0.1",
        SCHEDULE_POLL_INTERVAL_MS="1000",
        JOBSYS_LOG_LEVEL="DEBUG",
    )
    env.update(extra)
    return env


def run_cli(
    args: list[str], db_url: str, timeout: float = 60, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobsys", *args],
        env=jobsys_env(db_url, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class DaemonProcess:
    def __init__(self, proc: subprocess.Popen[str], log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)


def worker_rows(engine: Engine) -> list[WorkerInstance]:
    with engine.connect() as conn:
        return list(conn.execute(select(WorkerInstance)).all())  # type: ignore[arg-type]


@contextmanager
def daemon_process(
    db_url: str,
    tmp_path: Path,
    engine: Engine | None = None,
    *,
    name: str = "daemon",
    argv: Sequence[str] = ("-m", "jobsys", "daemon"),
    **extra: str,
) -> Iterator[DaemonProcess]:
    """Start ``jobsys daemon`` (``python`` with ``argv``); wait until it registered (when
    ``engine`` is given); on exit stop it (SIGTERM, then SIGKILL) and close its log."""
    log_path = tmp_path / f"{name}.log"
    before = {w.id for w in worker_rows(engine)} if engine is not None else set()
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            env=jobsys_env(db_url, **extra),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
        daemon = DaemonProcess(proc, log_path)
        try:
            if engine is not None:
                wait_for(
                    lambda: {w.id for w in worker_rows(engine) if w.pid == proc.pid} - before, 30
                )
            yield daemon
        except BaseException:
            # The daemon's side of a failure, in the test's captured output.
            print(f"--- {name} log (last 60 lines) ---")
            print("\n".join(daemon.log().splitlines()[-60:]))
            raise
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
