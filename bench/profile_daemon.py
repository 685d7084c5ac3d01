"""Where a daemon's CPU goes: a real ``jobsys daemon`` under cProfile, on a burst or on
many schedules due at once.

    .venv/bin/python bench/profile_daemon.py [--db sqlite|mysql] [--scenario burst|due]
        [--runs 1000] [--concurrency 4] [--top 40] [--mysql-url URL] [--out FILE.prof]

``burst``: one *run all* batch of ``--runs`` no-op jobs (as ``bench/run.py``'s burst);
``due``: ``--runs`` schedules whose slot (the current minute) is due at once. Prints the
daemon's CPU per run (``getrusage`` in the daemon, start of the scenario to its end, the
profiler's own cost excluded: it runs once without and once with it) and the top
functions by cumulative time inside ``Daemon.tick`` (only ticks are profiled, so start-up
and sleeping are not in it).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``jobsys`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import pstats
import resource
import shutil
import signal
import tempfile
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

from bench import jobsys_bench as jb
from bench.common import Processes, drop_mysql_database, say, wait_for
from bench.context import FULL, Bench

DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/jobsys_bench"


# -- inside the daemon process ------------------------------------------------------------
def child(out: Path, profile: bool) -> int:
    """Run ``jobsys daemon``; profile ``Daemon.tick`` when asked; on SIGUSR2 write the
    CPU used so far (and the profile) to ``out``."""
    import cProfile

    from jobsys import daemon as daemon_module
    from jobsys.cli import main as cli_main

    # CPU time, not wall time: waits (the fork server's reply, the database) are not CPU.
    prof = cProfile.Profile(time.process_time) if profile else None
    original = daemon_module.Daemon.tick

    def tick(self: Any) -> float:
        if prof is None:
            return original(self)
        prof.enable()
        try:
            return original(self)
        finally:
            prof.disable()

    timeline: list[tuple[float, float, int, int, int]] = []
    if os.environ.get("JOBSYS_BENCH_TIMELINE"):
        # Each tick: wall start (time.time), duration, runs going before and after, and
        # the outcomes it took from the children (``--timeline``).
        profiled_tick = tick

        def tick(self: Any) -> float:  # wraps the profiled one
            before, t0, p0 = len(self.running), time.time(), time.perf_counter()
            try:
                return profiled_tick(self)
            finally:
                took = time.perf_counter() - p0
                timeline.append((t0, took, before, len(self.running), before - len(self.running)))

    daemon_module.Daemon.tick = tick  # type: ignore[method-assign]

    def dump(*_: object) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        state = {"cpu_s": usage.ru_utime + usage.ru_stime, "time": time.time()}
        if prof is not None:
            prof.dump_stats(str(out) + ".prof")
            prof.clear()  # the next dump covers what follows
        if timeline:
            Path(str(out) + ".timeline").write_text(json.dumps(timeline))
            timeline.clear()
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, out)

    signal.signal(signal.SIGUSR2, dump)
    return cli_main(["daemon"])


# -- the driver ---------------------------------------------------------------------------
def _ask(proc_pid: int, out: Path) -> dict[str, Any]:
    asked = time.time()
    os.kill(proc_pid, signal.SIGUSR2)

    def fresh() -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(out.read_text())
        except (OSError, ValueError):
            return None
        return data if data["time"] >= asked else None

    result: dict[str, Any] = wait_for(fresh, 20, 0.02, "daemon snapshot")
    return result


def measure(bench: Bench, args: argparse.Namespace, profile: bool) -> dict[str, Any]:
    from sqlmodel import col, func, select

    from jobsys.loader import load_app
    from jobsys.manual import create_manual_batch
    from jobsys.store.models import JobRun
    from jobsys.store.schedules import sync_definitions
    from jobsys.store.workers import notify_daemons

    url = jb.fresh_db(bench, args.db, "burst")
    out = bench.tmp / f"snap-{int(profile)}.json"
    env = jb.base_env(DATABASE_URL=url, JOBSYS_APP=str(bench.main_app))
    env["JOBSYS_CONCURRENCY"] = str(args.concurrency)
    env["JOBSYS_WAKE_HOST"] = "127.0.0.1"
    if args.timeline:
        env["JOBSYS_BENCH_TIMELINE"] = "1"
    cmd = [jb.PYTHON, __file__, "--child", str(out)] + (["--profile"] if profile else [])
    app = load_app(str(bench.main_app))
    engine = jb.make_engine(url)
    if args.scenario == "due":
        sync_definitions(engine, app, jb.ENV, jb.utcnow())
    proc = bench.procs.start(f"daemon-{int(profile)}", cmd, env)
    try:
        wait_for(lambda: _registered(engine, proc.pid), 120, 0.05, "daemon registration")
        time.sleep(1.0)
        before = _ask(proc.pid, out)
        busy0, server0, kids0 = _machine_busy_s(), _server_cpu_s(), _descendants_cpu_s(proc.pid)
        t0 = jb.utcnow()
        if args.scenario == "burst":
            created = create_manual_batch(engine, app, mode="ALL_JOBS", now=t0, actor="bench")
            run_ids = created.run_ids
        else:
            slot = t0.replace(second=0, microsecond=0)
            ids = [f"fire_{i:04d}" for i in range(args.runs)]
            jb.enable(engine, ids, slot)
            run_ids = []
        notify_daemons(engine, jb.utcnow(), jb.WAKE_STALE)
        expected = len(run_ids) if run_ids else args.runs

        def done() -> bool:
            with engine.connect() as conn:
                n = conn.execute(
                    select(func.count())
                    .select_from(JobRun)
                    .where(col(JobRun.status).in_(jb.FINISHED))
                ).scalar_one()
            return bool(n >= expected)

        wait_for(done, 600, 0.05, "all runs finished")
        after = _ask(proc.pid, out)
        busy1, server1, kids1 = _machine_busy_s(), _server_cpu_s(), _descendants_cpu_s(proc.pid)
        with engine.connect() as conn:
            last = conn.execute(select(func.max(col(JobRun.finished_at)))).scalar_one()
            ok = conn.execute(
                select(func.count()).select_from(JobRun).where(col(JobRun.status) == "SUCCESS")
            ).scalar_one()
        if args.timeline:
            _print_timeline(Path(str(out) + ".timeline"), t0.timestamp())
        cpu = after["cpu_s"] - before["cpu_s"]
        return {
            "runs": expected,
            "success": ok,
            "wall_s": round((last - t0).total_seconds(), 3),
            "daemon_cpu_s": round(cpu, 3),
            "daemon_cpu_ms_per_run": round(cpu * 1000 / expected, 3),
            # Everything on the machine (workers, database server, this script's polling)
            # and the database server alone, per run: where a 2-CPU machine's time goes.
            "machine_cpu_ms_per_run": round((busy1 - busy0) * 1000 / expected, 3),
            "server_cpu_ms_per_run": round((server1 - server0) * 1000 / expected, 3),
            # The fork server and the workers (those alive at the end; a worker recycled
            # meanwhile is missed).
            "workers_cpu_ms_per_run": round((kids1 - kids0) * 1000 / expected, 3),
            "prof": str(out) + ".prof" if profile else None,
        }
    finally:
        bench.procs.stop(proc, timeout=30)
        engine.dispose()


def _machine_busy_s() -> float:
    """CPU seconds every CPU of the machine spent busy (``/proc/stat``, not idle or iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class _Proc(NamedTuple):
    ppid: int
    cpu_s: float
    name: str


def _proc_stats() -> dict[int, _Proc]:
    """Every process (``/proc/PID/stat``): its parent, CPU seconds and name."""
    out: dict[int, _Proc] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            rest = stat[stat.rindex(")") + 2 :].split()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            out[int(pid)] = _Proc(int(rest[1]), (int(rest[11]) + int(rest[12])) / tick, name)
    return out


def _descendants_cpu_s(root: int) -> float:
    """CPU seconds of the processes below ``root`` (not ``root`` itself)."""
    stats = _proc_stats()
    below = {root}
    grew = True
    while grew:
        grew = False
        for pid, proc in stats.items():
            if proc.ppid in below and pid not in below:
                below.add(pid)
                grew = True
    return sum(stats[p].cpu_s for p in below - {root})


def _server_cpu_s() -> float:
    """CPU seconds of the local database server (mariadbd or mysqld), 0 when not found."""
    return sum(p.cpu_s for p in _proc_stats().values() if p.name in ("mariadbd", "mysqld"))


def _print_timeline(path: Path, t0: float) -> None:
    """The ticks from the scenario's start: when each began (ms after it), how long it
    took, and the runs going before and after it."""
    ticks = [t for t in json.loads(path.read_text()) if t[0] >= t0 - 0.5]
    if not ticks:
        return
    busy = [t for t in ticks if t[1] > 0.0002 or t[2] != t[3]]
    total = sum(t[1] for t in busy)
    say(
        f"timeline: {len(busy)} busy ticks, {total * 1000:.1f} ms in them "
        f"({total * 1000 / max(1, len(busy)):.2f} ms each), "
        f"span {(busy[-1][0] + busy[-1][1] - t0) * 1000:.1f} ms"
    )
    for start, took, before, after, _ in busy[:60]:
        at, ms = (start - t0) * 1000, took * 1000
        print(f"  {at:8.1f} ms  tick {ms:6.2f} ms  running {before} -> {after}")


def _registered(engine: Any, pid: int) -> bool:
    from sqlmodel import col, func, select

    from jobsys.store.models import WorkerInstance

    with engine.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(WorkerInstance)
            .where(col(WorkerInstance.pid) == pid, col(WorkerInstance.status) == "RUNNING")
        ).scalar_one()
    return bool(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", choices=("sqlite", "mysql"), default="sqlite")
    parser.add_argument("--scenario", choices=("burst", "due"), default="burst")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--no-profile", action="store_true", help="only the CPU per run")
    parser.add_argument("--timeline", action="store_true", help="print the ticks' timing")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL)
    parser.add_argument("--out", type=Path, help="keep the cProfile file here")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.profile)
    tmp = Path(tempfile.mkdtemp(prefix="jobsys-profile-"))
    bench = Bench(
        procs=Processes(tmp / "logs"), tmp=tmp, quick=False, sizes=FULL, mysql_url=args.mysql_url
    )
    try:
        bench.main_app = jb.write_main_app(
            tmp / "bench_app.py", max(args.runs, 1), max(args.runs, 1), 0
        )
        plain = measure(bench, args, profile=False)
        say(f"without the profiler: {plain}")
        if not args.no_profile:
            profiled = measure(bench, args, profile=True)
            say(f"with the profiler: {profiled}")
            stats = pstats.Stats(profiled["prof"])
            if args.out:
                shutil.copy(profiled["prof"], args.out)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
        print(
            f"{args.scenario} of {plain['runs']} on {args.db}, concurrency {args.concurrency}: "
            f"{plain['wall_s']} s, daemon CPU {plain['daemon_cpu_ms_per_run']} ms per run "
            f"({plain['success']} SUCCESS) at {datetime.now(UTC):%Y-%m-%d %H:%M}"
        )
    finally:
        bench.procs.stop_all()
        for url in sorted(bench.mysql_created):
            drop_mysql_database(url)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
