"""APScheduler 3.x and Celery 5 (beat + worker, Redis broker), measured the same way as
jobsys on the same machine in the same run: see bench/README.md."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    Proc,
    base_env,
    count_lines,
    cpu_seconds,
    memory_kb,
    read_marks,
    recreate_mysql_database,
    say,
    summary_ms,
    wait_for,
    with_database,
)
from bench.context import Bench

APS_RUNNER = ROOT / "bench" / "aps_runner.py"
REDIS_URL = "redis://127.0.0.1:6379/0"
#: See jobsys_bench.EXTRA_WAIT_S.
EXTRA_WAIT_S = 90.0


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def aps_store_url(bench: Bench, backend: str, purpose: str) -> str:
    """A SQLAlchemy URL for APScheduler's job store (its own database/file)."""
    if backend == "sqlite":
        path = bench.tmp / f"aps-{purpose}.db"
        path.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    name = f"{bench.mysql_db}_{purpose}"
    url = with_database(bench.mysql_url, name)
    recreate_mysql_database(url)
    bench.mysql_created.add(url)
    return url.replace("mysql://", "mysql+pymysql://", 1)


def _start_aps(
    bench: Bench, name: str, mode: str, url: str, count: int, **kw: Any
) -> tuple[Proc, Path]:
    out = bench.tmp / f"{name}-{uuid.uuid4().hex[:6]}.json"
    args = [PYTHON, str(APS_RUNNER), mode, "--url", url, "--count", str(count), "--out", str(out)]
    for key, value in kw.items():
        if key != "marks":
            args += [f"--{key}", str(value)]
    env = base_env()
    if kw.get("marks"):
        env["BENCH_MARKS"] = str(kw["marks"])
    proc = bench.procs.start(name, args, env)

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
        return _read_json(out) is not None

    wait_for(ready, 60, 0.05, f"{name} ready")
    return proc, out


# -- APScheduler ------------------------------------------------------------------------
class ApsFiring:
    system = "apscheduler"
    measurement = "firing"

    def __init__(self, bench: Bench, backend: str, count: int) -> None:
        self.bench = bench
        self.backend = backend
        self.count = count
        self.label = f"apscheduler-{backend} firing {count}"
        self.key = f"apscheduler.{backend}.firing.{count}"
        # adding jobs to the store takes a while (one INSERT and commit each)
        self.arm_lead_s = 3.0 + count * (0.025 if backend == "sqlite" else 0.006)
        self.setup_est_s = 3.0
        self.marks = bench.tmp / f"marks-aps-{backend}-{count}.txt"
        self.proc: Proc | None = None
        self.out: Path | None = None

    def setup(self) -> None:
        self.marks.unlink(missing_ok=True)
        url = aps_store_url(self.bench, self.backend, "aps")
        self.proc, self.out = _start_aps(
            self.bench, f"aps-{self.backend}-fire", "fire", url, self.count, marks=self.marks
        )

    def arm(self, boundary: float) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGUSR1)

    def collect(self, boundary: float, deadline: float) -> dict[str, Any]:
        assert self.out is not None
        while count_lines(self.marks) < self.count and time.time() < deadline:
            time.sleep(0.25)
        if self.proc is not None:  # before the next minute's runs
            self.bench.procs.stop(self.proc)
            self.proc = None
        status = _read_json(self.out) or {}
        first: dict[str, float] = {}
        for m in read_marks(self.marks):
            first.setdefault(m[0], float(m[1]))
        marks = list(first.values())
        late = [t - boundary for t in marks]
        armed_end = status.get("time") if status.get("state") == "armed" else None
        return {
            "jobs": self.count,
            "ran": len(marks),
            "armed_before_boundary_s": (
                round(boundary - armed_end, 3) if armed_end is not None else None
            ),
            "function_start_lateness": summary_ms(late),
        }

    def teardown(self) -> None:
        if self.proc is not None:
            self.bench.procs.stop(self.proc)
            self.proc = None


def aps_burst(bench: Bench, backend: str, count: int, workers: int) -> dict[str, Any]:
    url = aps_store_url(bench, backend, "aps")
    proc, out = _start_aps(bench, f"aps-{backend}-burst", "burst", url, count, workers=workers)
    try:
        data: dict[str, Any] = wait_for(
            lambda: d if (d := _read_json(out)) and d.get("state") == "done" else None,
            600,
            0.1,
            "APScheduler burst",
        )
    finally:
        bench.procs.stop(proc)
    total = data.get("total_s")
    return {
        "jobs": count,
        "thread_pool": workers,
        "ran": data.get("ran"),
        "add_s": data.get("add_s"),
        "total_s": total,
        "jobs_per_s": round(count / total, 1) if total else None,
    }


class ApsIdle:
    """APScheduler with ``count`` yearly jobs: statements (counted in-process, as for
    jobsys) and CPU over a window."""

    system = "apscheduler"
    measurement = "idle"

    def __init__(self, bench: Bench, backend: str, count: int) -> None:
        self.bench = bench
        self.backend = backend
        self.count = count
        self.key = f"apscheduler.{backend}.idle"
        self.label = f"apscheduler-{backend} idle"
        self.proc: Proc | None = None
        self.stats = bench.tmp / f"stats-aps-{backend}.json"
        self.first: dict[str, Any] = {}

    def start(self) -> None:
        url = aps_store_url(self.bench, self.backend, "aps_idle")
        self.proc, out = _start_aps(
            self.bench, f"aps-{self.backend}-idle", "idle", url, self.count, stats=self.stats
        )
        wait_for(lambda: (_read_json(out) or {}).get("state") == "armed", 60, 0.05, "armed")
        time.sleep(1.0)
        self.first = self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        assert self.proc is not None
        asked = time.time()
        os.kill(self.proc.pid, signal.SIGUSR1)
        snap: dict[str, Any] = wait_for(
            lambda: d if (d := _read_json(self.stats)) and d["time"] >= asked else None,
            10,
            0.02,
            "APScheduler stats",
        )
        snap["proc_cpu_s"] = cpu_seconds(self.proc.pid)
        snap["memory_kb"] = memory_kb(self.proc.pid)
        return snap

    def finish(self) -> dict[str, Any]:
        assert self.proc is not None
        last = self._snapshot()
        self.bench.procs.stop(self.proc)
        self.proc = None
        window = last["time"] - self.first["time"]
        statements = last["counts"].get("statements", 0) - self.first["counts"].get("statements", 0)
        cpu = last["proc_cpu_s"] - self.first["proc_cpu_s"]
        return {
            "jobs": self.count,
            "window_s": round(window, 1),
            "statements": statements,
            "statements_per_hour": round(statements * 3600 / window),
            "cpu_s": round(cpu, 4),
            "cpu_s_per_hour": round(cpu * 3600 / window, 3),
            "rss_kb": last["memory_kb"].get("VmRSS"),
        }

    def abort(self) -> None:
        if self.proc is not None:
            self.bench.procs.stop(self.proc)
            self.proc = None


class ApsMemory:
    """APScheduler with ``count`` cron jobs in its SQLAlchemy store (spread as jobsys's
    memory app's schedules): VmRSS once they are added, and after idling."""

    system = "apscheduler"
    measurement = "memory"

    def __init__(self, bench: Bench, backend: str, count: int) -> None:
        self.bench = bench
        self.backend = backend
        self.count = count
        self.key = f"apscheduler.{backend}.memory"
        self.label = f"apscheduler-{backend} memory ({count} jobs)"
        self.proc: Proc | None = None
        self.result: dict[str, Any] = {}

    def start(self) -> None:
        from datetime import UTC, datetime

        url = aps_store_url(self.bench, self.backend, "aps_mem")
        month = (datetime.now(UTC).month + 5) % 12 + 1
        self.proc, out = _start_aps(
            self.bench, f"aps-{self.backend}-mem", "memory", url, self.count, month=month
        )
        state: dict[str, Any] = wait_for(
            lambda: d if (d := _read_json(out)) and d.get("state") == "armed" else None,
            600,
            0.2,
            "APScheduler jobs added",
        )
        time.sleep(2.0)
        mem = memory_kb(self.proc.pid)
        self.result = {
            "jobs": self.count,
            "add_s": state.get("add_s"),
            "after_start_rss_kb": mem.get("VmRSS"),
            "after_start_hwm_kb": mem.get("VmHWM"),
        }

    def finish(self) -> dict[str, Any]:
        assert self.proc is not None
        mem = memory_kb(self.proc.pid)
        self.bench.procs.stop(self.proc)
        self.proc = None
        self.result.update(
            {"after_idle_rss_kb": mem.get("VmRSS"), "after_idle_hwm_kb": mem.get("VmHWM")}
        )
        return self.result

    def abort(self) -> None:
        if self.proc is not None:
            self.bench.procs.stop(self.proc)
            self.proc = None


# -- Celery -----------------------------------------------------------------------------
def celery_env(bench: Bench, prefix: str, **extra: str) -> dict[str, str]:
    return base_env(
        BENCH_CELERY_BROKER=REDIS_URL,
        BENCH_CELERY_PREFIX=prefix,
        **extra,
    )


def start_worker(bench: Bench, name: str, prefix: str, concurrency: int, marks: Path) -> Proc:
    env = celery_env(bench, prefix, BENCH_MARKS=str(marks))
    proc = bench.procs.start(
        name,
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "-n",
            f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--loglevel",
            "INFO",
        ],
        env,
    )

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
        return " ready." in proc.log_path.read_text(errors="replace")

    wait_for(ready, 60, 0.1, f"{name} ready")
    return proc


def start_beat(bench: Bench, name: str, prefix: str, count: int, cron: str) -> Proc:
    env = celery_env(bench, prefix, BENCH_CELERY_BEAT_N=str(count), BENCH_CELERY_CRON=cron)
    schedule = bench.tmp / f"{name}-{uuid.uuid4().hex[:6]}-schedule"
    return bench.procs.start(
        name,
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "beat",
            "-s",
            str(schedule),
            "--loglevel",
            "INFO",
        ],
        env,
    )


def _purge(prefix: str) -> None:
    """Delete this run's keys (only ours: they all carry ``prefix``)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class CeleryFiring:
    """Beat with ``count`` entries on ``* * * * *``, started ``arm_lead_s`` before the
    boundary, and a prefork worker (concurrency 4, as jobsys's default) started before."""

    system = "celery"
    measurement = "firing"

    def __init__(self, bench: Bench, count: int, concurrency: int = 4) -> None:
        self.bench = bench
        self.count = count
        self.concurrency = concurrency
        self.label = f"celery firing {count}"
        self.key = f"celery.firing.{count}"
        self.arm_lead_s = 8.0
        self.setup_est_s = 6.0
        self.prefix = f"jobsys_bench:{uuid.uuid4().hex[:8]}:"
        self.marks = bench.tmp / f"marks-celery-{count}.txt"
        self.worker: Proc | None = None
        self.beat: Proc | None = None

    def setup(self) -> None:
        self.marks.unlink(missing_ok=True)
        self.worker = start_worker(
            self.bench, "celery-worker-fire", self.prefix, self.concurrency, self.marks
        )
        # One task through the broker and the pool first, as jobsys's daemon is warmed up.
        send = self.bench.procs.start(
            "celery-warmup",
            [PYTHON, "-c", "from bench.celery_app import noop; noop.delay('warmup')"],
            celery_env(self.bench, self.prefix),
        )
        send.popen.wait(30)
        self.bench.procs.stop(send)
        wait_for(lambda: count_lines(self.marks) >= 1, 30, 0.05, "celery warm-up task")
        self.marks.unlink()

    def arm(self, boundary: float) -> None:
        self.beat = start_beat(self.bench, "celery-beat-fire", self.prefix, self.count, "* * * * *")
        self.beat_started = time.time()

    def collect(self, boundary: float, deadline: float) -> dict[str, Any]:
        while count_lines(self.marks) < self.count and time.time() < deadline:
            time.sleep(0.25)
        if self.beat is not None:  # before it sends the next minute's tasks
            self.bench.procs.stop(self.beat)
            self.beat = None
        # Tasks already sent may still run: wait for them (nothing new is sent).
        while count_lines(self.marks) < self.count and time.time() < deadline + EXTRA_WAIT_S:
            time.sleep(0.25)
        marks = read_marks(self.marks)
        late = [float(m[1]) - boundary for m in marks if len(m) >= 2]
        return {
            "entries": self.count,
            "worker_concurrency": self.concurrency,
            "ran": len(marks),
            "beat_started_before_boundary_s": round(boundary - self.beat_started, 3),
            "function_start_lateness": summary_ms(late),
        }

    def teardown(self) -> None:
        for proc in (self.beat, self.worker):
            if proc is not None:
                self.bench.procs.stop(proc)
        self.beat = self.worker = None
        _purge(self.prefix)


_BURST_PREFIX = f"jobsys_bench:{uuid.uuid4().hex[:8]}:burst:"


def celery_burst(bench: Bench, count: int, concurrency: int) -> dict[str, Any]:
    """``count`` × ``noop.delay()`` from this process → all ran (marks file)."""
    from bench.celery_app import app as celery_app

    # One prefix per benchmark run: the app's producer pool keeps its first settings.
    celery_app.conf.broker_url = REDIS_URL
    celery_app.conf.broker_transport_options = {"global_keyprefix": _BURST_PREFIX}
    _purge(_BURST_PREFIX)
    marks = bench.tmp / f"marks-celery-burst-{concurrency}.txt"
    marks.unlink(missing_ok=True)
    worker = start_worker(
        bench, f"celery-worker-burst-c{concurrency}", _BURST_PREFIX, concurrency, marks
    )
    task = celery_app.tasks["bench.noop"]
    try:
        time.sleep(0.5)
        t0 = time.time()
        for i in range(count):
            task.delay(f"b{i:04d}")
        sent = time.time()
        wait_for(lambda: count_lines(marks) >= count, 600, 0.02, "Celery burst")
        ends = [float(m[2]) for m in read_marks(marks)]
        total = max(ends) - t0
        return {
            "tasks": count,
            "worker_concurrency": concurrency,
            "send_s": round(sent - t0, 3),
            "total_s": round(total, 3),
            "tasks_per_s": round(count / total, 1),
        }
    finally:
        bench.procs.stop(worker)
        _purge(_BURST_PREFIX)


class CeleryIdle:
    """Beat with ``count`` yearly entries (and, separately, an idle worker): CPU."""

    system = "celery"
    measurement = "idle"

    def __init__(self, bench: Bench, count: int) -> None:
        self.bench = bench
        self.count = count
        self.key = "celery.idle.beat"
        self.label = "celery beat idle"
        self.prefix = f"jobsys_bench:{uuid.uuid4().hex[:8]}:"
        self.beat: Proc | None = None
        self.t0 = 0.0
        self.cpu0 = 0.0

    def start(self) -> None:
        self.beat = start_beat(self.bench, "celery-beat-idle", self.prefix, self.count, "0 0 1 1 *")
        wait_for(
            lambda: "beat: Starting" in self.beat.log_path.read_text(errors="replace"),  # type: ignore[union-attr]
            60,
            0.1,
            "beat started",
        )
        time.sleep(2.0)
        self.t0 = time.time()
        self.cpu0 = cpu_seconds(self.beat.pid)

    def finish(self) -> dict[str, Any]:
        assert self.beat is not None
        cpu = cpu_seconds(self.beat.pid) - self.cpu0
        window = time.time() - self.t0
        rss = memory_kb(self.beat.pid).get("VmRSS")
        self.bench.procs.stop(self.beat)
        self.beat = None
        _purge(self.prefix)
        return {
            "entries": self.count,
            "window_s": round(window, 1),
            "cpu_s": round(cpu, 4),
            "cpu_s_per_hour": round(cpu * 3600 / window, 3),
            "rss_kb": rss,
        }

    def abort(self) -> None:
        if self.beat is not None:
            self.bench.procs.stop(self.beat)
            self.beat = None
        _purge(self.prefix)


def celery_worker_idle(bench: Bench, window_s: float, concurrency: int = 4) -> dict[str, Any]:
    prefix = f"jobsys_bench:{uuid.uuid4().hex[:8]}:"
    marks = bench.tmp / "marks-celery-idle.txt"
    worker = start_worker(bench, "celery-worker-idle", prefix, concurrency, marks)
    try:
        time.sleep(2.0)
        pids = [worker.pid, *_children(worker.pid)]
        cpu0 = sum(cpu_seconds(p) for p in pids)
        t0 = time.time()
        time.sleep(window_s)
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        window = time.time() - t0
        rss = sum(memory_kb(p).get("VmRSS", 0) for p in pids)
    finally:
        bench.procs.stop(worker)
        _purge(prefix)
    return {
        "concurrency": concurrency,
        "processes": len(pids),
        "window_s": round(window, 1),
        "cpu_s": round(cpu, 4),
        "cpu_s_per_hour": round(cpu * 3600 / window, 3),
        "rss_kb_all_processes": rss,
    }


class CeleryMemory:
    """Celery beat with ``count`` entries plus a prefork worker (``-c 4``): VmRSS of beat,
    of the worker and its pool processes, and the total."""

    system = "celery"
    measurement = "memory"

    def __init__(self, bench: Bench, count: int, concurrency: int = 4) -> None:
        self.bench = bench
        self.count = count
        self.concurrency = concurrency
        self.key = "celery.memory"
        self.label = f"celery memory ({count} beat entries)"
        self.prefix = f"jobsys_bench:{uuid.uuid4().hex[:8]}:"
        self.beat: Proc | None = None
        self.worker: Proc | None = None

    def start(self) -> None:
        marks = self.bench.tmp / "marks-celery-memory.txt"
        self.worker = start_worker(
            self.bench, "celery-worker-mem", self.prefix, self.concurrency, marks
        )
        self.beat = start_beat(self.bench, "celery-beat-mem", self.prefix, self.count, "0 0 1 1 *")
        wait_for(
            lambda: "beat: Starting" in self.beat.log_path.read_text(errors="replace"),  # type: ignore[union-attr]
            120,
            0.1,
            "beat started",
        )
        time.sleep(5.0)

    def finish(self) -> dict[str, Any]:
        assert self.beat is not None and self.worker is not None
        beat = memory_kb(self.beat.pid).get("VmRSS", 0)
        pids = [self.worker.pid, *_children(self.worker.pid)]
        worker = sum(memory_kb(p).get("VmRSS", 0) for p in pids)
        self.abort()
        return {
            "entries": self.count,
            "concurrency": self.concurrency,
            "beat_rss_kb": beat,
            "worker_processes": len(pids),
            "worker_rss_kb": worker,
            "total_rss_kb": beat + worker,
        }

    def abort(self) -> None:
        for proc in (self.beat, self.worker):
            if proc is not None:
                self.bench.procs.stop(proc)
        self.beat = self.worker = None
        _purge(self.prefix)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        out += [int(x) for x in text.split()]
    return out


def log_warning_lines(proc: Proc) -> None:
    for line in proc.log_tail(200).splitlines():
        if "ERROR" in line or "Traceback" in line:
            say(f"{proc.name}: {line}")
