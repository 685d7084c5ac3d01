"""Shared helpers: child processes (always cleaned up), clocks, statistics, /proc readers,
throw-away databases."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# -- output -----------------------------------------------------------------------------
_T0 = time.monotonic()


def say(message: str) -> None:
    """Progress line on stderr (the results table goes to stdout)."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- processes --------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""


@dataclass
class Processes:
    """Every process the benchmark starts, each in its own session (process group), so
    that stopping it also stops its children (celery's pool, jobsys's job children)."""

    log_dir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], env: dict[str, str]) -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}-{len(self.procs):03d}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        popen = subprocess.Popen(
            list(args),
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(ROOT),
        )
        proc = Proc(name, popen, log_path, log_file)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int | None:
        """SIGTERM the process (a graceful stop), SIGKILL its whole group after ``timeout``."""
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(sig)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"{proc.name} (pid {proc.pid}) did not stop within {timeout:.0f}s: SIGKILL")
        # Whatever is left in its group (pool children, a stuck job) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(10)
        with contextlib.suppress(OSError):
            proc.log_file.close()
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc, timeout=10)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: ours without jobsys/celery settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JOBSYS_", "SCHEDULE_", "DATABASE_URL", "LOCK_", "BENCH_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# -- time -------------------------------------------------------------------------------
def next_boundary(min_lead_s: float) -> float:
    """The first whole minute (epoch seconds) at least ``min_lead_s`` from now."""
    return math.ceil((time.time() + min_lead_s) / 60.0) * 60.0


def sleep_until(epoch: float) -> None:
    while True:
        left = epoch - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5) if left > 0.6 else left)


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


# -- statistics -------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    data = sorted(values)
    k = (len(data) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary_ms(values_s: Sequence[float]) -> dict[str, float | int]:
    """median / p95 / p99 / max / min in milliseconds of values given in seconds."""
    ms = [v * 1000.0 for v in values_s]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "min_ms": round(min(ms), 2),
        "median_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
    }


# -- /proc ------------------------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads, not its children).

    From the threads' ``schedstat`` (nanoseconds) when the kernel has it, else from
    ``stat`` (clock ticks, 10 ms).
    """
    total_ns = 0
    found = False
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = Path(f"/proc/{pid}/task/{task}/schedstat").read_text()
                total_ns += int(text.split()[0])
                found = True
    if found:
        return total_ns / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def read_marks(path: Path) -> list[list[str]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [line.split() for line in text.splitlines() if line.strip()]


# -- databases --------------------------------------------------------------------------
def recreate_mysql_database(url: str) -> None:
    """DROP and CREATE the database ``url`` names (utf8mb4, binary collation)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from jobsys.store.db import normalize_url

    parsed = make_url(normalize_url(url))
    name = parsed.database
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to recreate database {name!r}: use a plain name")
    server = create_engine(parsed._replace(database=None), poolclass=NullPool)
    try:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            conn.exec_driver_sql(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
    finally:
        server.dispose()


def drop_mysql_database(url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from jobsys.store.db import normalize_url

    parsed = make_url(normalize_url(url))
    server = create_engine(parsed._replace(database=None), poolclass=NullPool)
    try:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{parsed.database}`")
    finally:
        server.dispose()


def mysql_global_status(url: str, names: Sequence[str]) -> dict[str, int]:
    """``SHOW GLOBAL STATUS`` counters (server-wide: other clients count too)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from jobsys.store.db import normalize_url

    server = create_engine(make_url(normalize_url(url))._replace(database=None), poolclass=NullPool)
    try:
        with server.connect() as conn:
            rows = conn.exec_driver_sql("SHOW GLOBAL STATUS").all()
    finally:
        server.dispose()
    wanted = set(names)
    return {str(k): int(v) for k, v in rows if k in wanted}


def with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start
