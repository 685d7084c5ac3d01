"""jobsys benchmarks: one command, see bench/README.md.

    .venv/bin/python bench/run.py [--db sqlite|mysql|both] [--quick] [--only NAMES]
                                  [--json OUT.json] [--mysql-url URL] [--keep]

Sets up throw-away databases (a temp dir for SQLite; ``jobsys_bench`` and
``jobsys_bench_*`` on MariaDB, dropped at the end), runs real ``jobsys daemon``,
APScheduler and Celery processes, prints a markdown table and writes the full results
to ``bench/results/latest.json``. Every process it starts is stopped on exit, Ctrl-C
included.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``jobsys`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import dataclasses
import json
import os
import platform
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Protocol

from bench import competitors as comp
from bench import jobsys_bench as jb
from bench.common import (
    ROOT,
    Processes,
    drop_mysql_database,
    next_boundary,
    say,
    sleep_until,
)
from bench.context import FULL, QUICK, Bench
from bench.report import render

MEASUREMENTS = ("firing", "idle", "runnow", "burst", "memory", "scaling")
#: Daemons sharing one MariaDB database in the scaling measurement (compared with one).
SCALING_DAEMONS = 3
SYSTEMS = ("jobsys", "apscheduler", "celery")
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/jobsys_bench"
#: A firing measurement stops new firings this long after the boundary (before the next
#: minute's slot, which it must not see), then waits for what was fired to start.
COLLECT_S = 50.0


class Firing(Protocol):
    key: str
    label: str
    system: str
    measurement: str
    arm_lead_s: float
    setup_est_s: float

    def setup(self) -> None: ...
    def arm(self, boundary: float) -> None: ...
    def collect(self, boundary: float, deadline: float) -> dict[str, Any]: ...
    def teardown(self) -> None: ...


class Background(Protocol):
    """Started at the beginning, finished later (idle windows, memory after idling)."""

    key: str
    label: str
    system: str
    measurement: str

    def start(self) -> None: ...
    def finish(self) -> dict[str, Any]: ...
    def abort(self) -> None: ...


@dataclass
class Task:
    key: str
    label: str
    system: str
    measurement: str
    est_s: float
    run: Callable[[], dict[str, Any]]
    not_before: float = 0.0


class Runner:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.results: dict[str, Any] = {}
        self.durations: dict[str, float] = {}

    def record(self, key: str, label: str, fn: Callable[[], dict[str, Any]]) -> None:
        say(f"{label} ...")
        start = time.monotonic()
        try:
            self.results[key] = fn()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            say(f"{label} FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            self.results[key] = {"error": f"{type(exc).__name__}: {exc}"}
        self.durations[key] = round(time.monotonic() - start, 1)
        say(f"{label} done in {self.durations[key]:.1f}s: {_brief(self.results[key])}")

    def run_task(self, task: Task) -> None:
        self.record(task.key, task.label, task.run)

    def run_group(self, group: list[Firing]) -> None:
        """Set up every scenario, arm each ``arm_lead_s`` before the next minute boundary,
        collect, tear down. (A full run has one scenario per group.)"""
        ready: list[Firing] = []
        try:
            for sc in group:
                try:
                    say(f"{sc.label}: setting up")
                    sc.setup()
                    ready.append(sc)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    say(f"{sc.label} FAILED in setup: {type(exc).__name__}: {exc}")
                    traceback.print_exc(file=sys.stderr)
                    self.results[sc.key] = {"error": f"setup: {type(exc).__name__}: {exc}"}
            if not ready:
                return
            lead = max(sc.arm_lead_s for sc in ready)
            for attempt in (1, 2):
                boundary = next_boundary(lead + 1.0)
                say(
                    f"waiting for {datetime.fromtimestamp(boundary, UTC):%H:%M:%S} UTC "
                    f"({boundary - time.time():.0f}s)"
                )
                armed: list[Firing] = []
                late = False
                for sc in sorted(ready, key=lambda s: -s.arm_lead_s):
                    sleep_until(boundary - sc.arm_lead_s)
                    if attempt == 1 and not armed and time.time() > boundary - sc.arm_lead_s / 2:
                        # This process woke late (a stalled VM, seen here once): nothing
                        # was enabled yet, so try at the next boundary instead.
                        say(f"{sc.label}: woke too late to arm; trying the next minute")
                        late = True
                        break
                    try:
                        sc.arm(boundary)
                        armed.append(sc)
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:
                        say(f"{sc.label} FAILED to arm: {type(exc).__name__}: {exc}")
                        self.results[sc.key] = {"error": f"arm: {type(exc).__name__}: {exc}"}
                if not late:
                    break
            sleep_until(boundary)
            deadline = boundary + COLLECT_S
            for sc in armed:
                self.record(sc.key, sc.label, lambda sc=sc: sc.collect(boundary, deadline))
        finally:
            for sc in group:
                try:
                    sc.teardown()
                except Exception as exc:
                    say(f"{sc.label}: teardown failed: {exc}")

    def run_plan(
        self,
        backgrounds: list[Background],
        groups: list[list[Firing]],
        tasks: list[Task],
        memory: list[jb.JobsysMemory],
    ) -> None:
        started: list[Background] = []
        for bg in [*memory, *backgrounds]:
            try:
                say(f"{bg.label}: starting (runs in the background)")
                bg.start()
                started.append(bg)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                say(f"{bg.label} FAILED to start: {type(exc).__name__}: {exc}")
                traceback.print_exc(file=sys.stderr)
                self.results[bg.key] = {"error": f"start: {type(exc).__name__}: {exc}"}
                bg.abort()
        pending = list(tasks)
        for mem in memory:
            if mem in started:
                pending.append(
                    Task(mem.key, mem.label, "jobsys", "memory", 3.0, mem.finish, mem.ready_at())
                )
        try:
            for group in groups:
                prep = sum(sc.setup_est_s for sc in group) + max(sc.arm_lead_s for sc in group)
                prep += 3.0
                # Fill the wait for the boundary with measurements that fit in it.
                while True:
                    room = next_boundary(prep) - prep - time.time()
                    now = time.time()
                    fits = [t for t in pending if t.not_before <= now and t.est_s + 2 <= room]
                    if not fits:
                        break
                    task = max(fits, key=lambda t: t.est_s)
                    pending.remove(task)
                    self.run_task(task)
                self.run_group(group)
            while pending:
                now = time.time()
                ready = [t for t in pending if t.not_before <= now]
                if not ready:
                    sleep_until(min(t.not_before for t in pending))
                    continue
                task = ready[0]
                pending.remove(task)
                self.run_task(task)
            for bg in started:
                if bg in memory:
                    continue
                self.record(bg.key, bg.label, bg.finish)
        finally:
            for bg in started:
                try:
                    bg.abort()
                except Exception as exc:
                    say(f"{bg.label}: abort failed: {exc}")


def _brief(result: dict[str, Any]) -> str:
    text = json.dumps({k: v for k, v in result.items() if k != "statement_texts"})
    return text if len(text) < 300 else text[:297] + "..."


def build(
    bench: Bench, backends: list[str], only: set[str]
) -> tuple[list[Background], list[list[Firing]], list[Task], list[jb.JobsysMemory]]:
    sz = bench.sizes
    want_m = {x for x in only if x in MEASUREMENTS}
    want_s = {x for x in only if x in SYSTEMS}

    def wanted(system: str, measurement: str) -> bool:
        return (not want_m or measurement in want_m) and (not want_s or system in want_s)

    backgrounds: list[Background] = []
    firings: list[Firing] = []
    tasks: list[Task] = []
    memory: list[jb.JobsysMemory] = []
    for be in backends:
        if wanted("jobsys", "firing"):
            firings += [jb.JobsysFiring(bench, be, n, 4) for n in sz.fire_counts]
            firings += [jb.JobsysFiring(bench, be, n, 8) for n in sz.fire_c8_counts]
            if not bench.quick:  # --quick fires everything at one boundary: not next to it
                # The same with a fresh process per run (issue 9: reported, no target).
                firings += [jb.JobsysFiring(bench, be, n, 4, "process") for n in sz.fire_counts]
        if wanted("jobsys", "idle"):
            # At the default poll over the whole run, next to everything else (it wakes
            # once a minute); and at a short poll over a window, alone.
            backgrounds.append(jb.JobsysIdle(bench, be, 60_000, 0))
            fg = jb.JobsysIdle(bench, be, sz.idle_poll_ms, sz.idle_window_s)
            tasks.append(
                Task(
                    fg.key,
                    fg.label,
                    "jobsys",
                    "idle",
                    6 + sz.idle_window_s,
                    lambda fg=fg: _idle_window(fg),
                )
            )
        if wanted("jobsys", "runnow"):
            tasks.append(
                Task(
                    f"jobsys.{be}.runnow.wake",
                    f"jobsys-{be} Run-Now (wake-up)",
                    "jobsys",
                    "runnow",
                    6 + sz.runnow_tries * 0.5,
                    lambda be=be: jb.run_now(
                        bench, be, tries=sz.runnow_tries, wake=True, poll_ms=60_000
                    ),
                )
            )
            poll = sz.runnow_nowake_poll_ms
            tasks.append(
                Task(
                    f"jobsys.{be}.runnow.nowake",
                    f"jobsys-{be} Run-Now (no wake-up)",
                    "jobsys",
                    "runnow",
                    8 + 4 * poll / 1000 + poll / 1000,
                    lambda be=be, poll=poll: jb.run_now(
                        bench, be, tries=sz.runnow_tries, wake=False, poll_ms=poll
                    ),
                )
            )
        if wanted("jobsys", "burst"):
            for c in sz.burst_concurrency:
                tasks.append(
                    Task(
                        f"jobsys.{be}.burst.c{c}",
                        f"jobsys-{be} burst {sz.jobs} c{c}",
                        "jobsys",
                        "burst",
                        8 + sz.jobs / 100,
                        lambda be=be, c=c: jb.burst(bench, be, concurrency=c),
                    )
                )
            tasks.append(
                Task(
                    f"jobsys.{be}.burst_process.c4",
                    f"jobsys-{be} burst {sz.jobs} c4, a process per run",
                    "jobsys",
                    "burst",
                    8 + sz.jobs / 50,
                    lambda be=be: jb.burst(bench, be, concurrency=4, isolation="process"),
                )
            )
        if wanted("jobsys", "memory"):
            memory.append(jb.JobsysMemory(bench, be, sz.memory_schedules, sz.memory_idle_s))
        if wanted("jobsys", "scaling") and be == "mysql":
            # Several daemons share one MariaDB (as on several hosts); SQLite is one host.
            for n in (1, SCALING_DAEMONS):
                tasks.append(
                    Task(
                        f"jobsys.{be}.scaling.d{n}",
                        f"jobsys-{be} scaling {sz.scaling_runs} x 1 s, {n} daemon(s) c4",
                        "jobsys",
                        "scaling",
                        15 + sz.scaling_runs / (4 * n) * 1.1,
                        lambda be=be, n=n: jb.scaling(
                            bench, be, runs=sz.scaling_runs, daemons=n, concurrency=4
                        ),
                    )
                )
    for be in backends:
        if wanted("apscheduler", "memory"):
            backgrounds.append(comp.ApsMemory(bench, be, sz.memory_schedules))
        if wanted("apscheduler", "firing"):
            firings += [comp.ApsFiring(bench, be, n) for n in sz.fire_counts]
        if wanted("apscheduler", "idle"):
            backgrounds.append(comp.ApsIdle(bench, be, sz.idle_schedules))
        if wanted("apscheduler", "burst"):
            for c in sz.burst_concurrency:
                tasks.append(
                    Task(
                        f"apscheduler.{be}.burst.c{c}",
                        f"apscheduler-{be} burst c{c}",
                        "apscheduler",
                        "burst",
                        6 + sz.jobs / 200,
                        lambda be=be, c=c: comp.aps_burst(bench, be, sz.jobs, c),
                    )
                )
    if wanted("celery", "firing"):
        firings += [comp.CeleryFiring(bench, n) for n in sz.fire_counts]
    if wanted("celery", "idle"):
        backgrounds.append(comp.CeleryIdle(bench, sz.idle_schedules))
        tasks.append(
            Task(
                "celery.idle.worker",
                "celery worker idle",
                "celery",
                "idle",
                6 + sz.celery_worker_idle_s,
                lambda: comp.celery_worker_idle(bench, sz.celery_worker_idle_s),
            )
        )
    if wanted("celery", "memory"):
        backgrounds.append(comp.CeleryMemory(bench, sz.memory_schedules))
    if wanted("celery", "burst"):
        for c in sz.burst_concurrency:
            tasks.append(
                Task(
                    f"celery.burst.c{c}",
                    f"celery burst c{c}",
                    "celery",
                    "burst",
                    8 + sz.jobs / 200,
                    lambda c=c: comp.celery_burst(bench, sz.jobs, c),
                )
            )
    # A full run fires each scenario at its own minute boundary; --quick fires them all
    # at one boundary (a smoke test: they share the CPU, so its figures are indicative).
    groups = [firings] if (bench.quick and firings) else [[f] for f in firings]
    return backgrounds, groups, tasks, memory


def _idle_window(idle: jb.JobsysIdle) -> dict[str, Any]:
    try:
        idle.start()
        time.sleep(idle.window_s)
        return idle.finish()
    finally:
        idle.abort()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "mysql", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="smaller, under ~3 minutes")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated measurements (firing, idle, runnow, burst, memory, scaling) and/or "
        "systems (jobsys, apscheduler, celery); default everything",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and databases")
    parser.add_argument(
        "--scaling-runs",
        type=int,
        default=None,
        help="runs of the 1-second job in the scaling measurement (default 1,000; 48 with "
        "--quick): one daemon needs runs / 4 seconds",
    )
    args = parser.parse_args(argv)
    only = {x.strip().lower() for x in args.only.split(",") if x.strip()}
    unknown = only - set(MEASUREMENTS) - set(SYSTEMS)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    backends = ["sqlite", "mysql"] if args.db == "both" else [args.db]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Once: a second Ctrl-C must not interrupt the clean-up.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    # SIGINT too: a shell starts background jobs with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    tmp = Path(tempfile.mkdtemp(prefix="jobsys-bench-"))
    procs = Processes(tmp / "logs")
    sizes = QUICK if args.quick else FULL
    if args.scaling_runs is not None:
        if args.scaling_runs < 1:
            parser.error("--scaling-runs: at least 1")
        sizes = dataclasses.replace(sizes, scaling_runs=args.scaling_runs)
    bench = Bench(procs=procs, tmp=tmp, quick=args.quick, sizes=sizes, mysql_url=args.mysql_url)
    runner = Runner(bench)
    started = datetime.now(UTC)
    load_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.monotonic()
    code = 0
    say(f"temp dir {tmp}; {'quick' if args.quick else 'full'} run; backends {backends}")
    try:
        bench.main_app = jb.write_main_app(
            tmp / "bench_app.py", sizes.jobs, max(sizes.fire_counts), sizes.idle_schedules
        )
        bench.memory_app = jb.write_memory_app(tmp / "bench_memory_app.py", sizes.memory_schedules)
        runner.run_plan(*build(bench, backends, only))
    except KeyboardInterrupt:
        say("interrupted: stopping every process")
        code = 130
    finally:
        procs.stop_all()
        if not args.keep:
            for url in sorted(bench.mysql_created):
                try:
                    drop_mysql_database(url)
                except Exception as exc:
                    say(f"could not drop {url}: {exc}")
            shutil.rmtree(tmp, ignore_errors=True)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t0, 1),
        "mode": "quick" if args.quick else "full",
        "backends": backends,
        "only": sorted(only),
        "host": platform.node(),
        "cpus": _cpus(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "versions": _versions(args.mysql_url if "mysql" in backends else None),
        "git": _git(),
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "sizes": sizes.__dict__,
        "durations_s": runner.durations,
        "interrupted": code != 0,
    }
    output = {"meta": meta, "results": runner.results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=2, default=str))
    print(render(output))
    say(f"results written to {args.json}")
    return code


def _git() -> str:
    """The checkout measured: commit, and whether jobsys/ had uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "jobsys"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    return f"{head}{' (jobsys/ modified)' if dirty else ''}"


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _versions(mysql_url: str | None) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import jobsys

    out: dict[str, str] = {"jobsys": jobsys.__version__}
    for name in ("SQLAlchemy", "PyMySQL", "APScheduler", "celery", "kombu", "redis"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    if mysql_url:
        try:
            from sqlalchemy import create_engine
            from sqlalchemy.engine import make_url
            from sqlalchemy.pool import NullPool

            from jobsys.store.db import normalize_url

            server = make_url(normalize_url(mysql_url))._replace(database=None)
            engine = create_engine(server, poolclass=NullPool)
            with engine.connect() as conn:
                out["server"] = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
            engine.dispose()
        except Exception:
            out["server"] = "?"
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


if __name__ == "__main__":
    sys.exit(main())
