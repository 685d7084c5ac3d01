"""The markdown tables bench/run.py prints (from the JSON it writes)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

COLUMNS = [
    ("jobsys SQLite", "jobsys.sqlite"),
    ("jobsys MariaDB", "jobsys.mysql"),
    ("APScheduler SQLite store", "apscheduler.sqlite"),
    ("APScheduler MariaDB store", "apscheduler.mysql"),
    ("Celery beat + worker (Redis)", "celery"),
]

#: (label, result key, field, limit in ms or units, comparison text)
TARGETS = [
    # Issue 9: the job function's start, as measured for APScheduler and Celery.
    ("job start, 1 schedule due", "firing.1.c4", "function_start_lateness.p99_ms", 10.0),
    ("job start p99, 100 schedules", "firing.100.c4", "function_start_lateness.p99_ms", 100.0),
    (
        "job start p99, 1,000 schedules",
        "firing.1000.c4",
        "function_start_lateness.p99_ms",
        1500.0,
    ),
    ("Run-Now latency median, wake-up", "runnow.wake", "request_to_started_at.median_ms", 300.0),
    ("Run-Now latency p95, wake-up", "runnow.wake", "request_to_started_at.p95_ms", 300.0),
]
BURST_TARGET_S = {"sqlite": 1.5, "mysql": 2.0}
DAEMON_CPU_PER_RUN_MS = 0.5
MEMORY_TARGET_MIB = 60.0
SCALING_TARGET = 2.5


def scaling_ratio(res: dict[str, Any]) -> float | None:
    """One daemon's time over three daemons' time for the same batch (MariaDB)."""
    one = _get(res.get("jobsys.mysql.scaling.d1"), "total_s")
    three = _get(res.get("jobsys.mysql.scaling.d3"), "total_s")
    if not one or not three:
        return None
    return float(one) / float(three)


def _get(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _ms(value: Any) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def _lat(summary: Any) -> str:
    if not isinstance(summary, dict) or not summary.get("n"):
        return "-"
    return f"{_ms(summary['median_ms'])} / {_ms(summary['p99_ms'])} / {_ms(summary['max_ms'])}"


def _cell(results: dict[str, Any], key: str, fmt: Callable[[dict[str, Any]], str]) -> str:
    value = results.get(key)
    if value is None:
        return "-"
    if "error" in value:
        return "error"
    try:
        return fmt(value)
    except (KeyError, TypeError, ZeroDivisionError):
        return "?"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _per_poll(r: dict[str, Any], backend: str) -> str:
    polls = r.get("polls_in_window")
    if not polls:
        return "-"
    if backend == "mysql":
        return (
            f"{r['statements_per_poll']:.1f} statements = "
            f"{r['round_trips_per_poll']:.1f} round trips"
        )
    return (
        f"{r['statements_per_poll']:.1f} statements (+ {r['commits'] / polls:.1f} commit, "
        f"{r['rollbacks'] / polls:.1f} rollback)"
    )


def _firing_cell(r: dict[str, Any]) -> str:
    summary = r.get("start_lateness") or r.get("function_start_lateness")
    text = _lat(summary)
    expected = r.get("schedules", r.get("jobs", r.get("entries")))
    ran = r.get("fired", r.get("ran"))
    if expected is not None and ran is not None and ran < expected:
        text += f" (only {ran}/{expected})"
    return text


def render(output: dict[str, Any]) -> str:
    meta = output.get("meta", {})
    res: dict[str, Any] = output.get("results", {})
    out: list[str] = []
    out.append(
        f"## jobsys benchmarks — {meta.get('started', '?')} ({meta.get('mode', '?')} run, "
        f"{meta.get('duration_s', '?')} s, commit {meta.get('git', '?')})\n"
    )
    out.append(
        f"{meta.get('cpu_model', '?')}, {meta.get('cpus', '?')} CPUs; Python "
        f"{meta.get('python', '?')}; load average {meta.get('loadavg_start')} at start, "
        f"{meta.get('loadavg_end')} at end; "
        + ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())
        + "\n"
    )
    counts = sorted(
        {
            int(k.split(".")[3])
            for k in res
            if k.startswith("jobsys.") and ".firing." in k and k.endswith(".c4")
        }
        | {int(k.rsplit(".", 1)[1]) for k in res if k.startswith("celery.firing.")}
        | {
            int(k.rsplit(".", 1)[1])
            for k in res
            if k.startswith("apscheduler.") and ".firing." in k
        }
    )

    # -- firing
    out.append("### 1. Firing lateness: due instant → first job start, ms (median / p99 / max)\n")
    out.append(
        "jobsys: `job_run.started_at − scheduled_for` (the claim, just before the fork); "
        "APScheduler and Celery: job function start − due instant. Concurrency 4 "
        "(jobsys daemon, APScheduler thread pool, Celery prefork pool).\n"
    )
    rows = []
    for n in counts:
        row = [str(n)]
        for _, prefix in COLUMNS:
            key = (
                f"{prefix}.firing.{n}.c4" if prefix.startswith("jobsys") else f"{prefix}.firing.{n}"
            )
            row.append(_cell(res, key, _firing_cell))
        rows.append(row)
    for n in sorted({int(k.split(".")[3]) for k in res if ".firing." in k and k.endswith(".c8")}):
        row = [f"{n} (concurrency 8)"]
        for _, prefix in COLUMNS:
            key = f"{prefix}.firing.{n}.c8"
            row.append(_cell(res, key, _firing_cell) if prefix.startswith("jobsys") else "")
        rows.append(row)
    out.append(_table(["schedules due", *[c for c, _ in COLUMNS]], rows) + "\n")
    rows = []
    jobsys_counts = sorted(
        {int(k.split(".")[3]) for k in res if k.startswith("jobsys.") and ".firing." in k}
    )
    for n in jobsys_counts:
        rows.append(
            [
                str(n),
                *[
                    _cell(res, f"jobsys.{be}.firing.{n}.c4", lambda r, f=field: _lat(r[f]))
                    for be in ("sqlite", "mysql")
                    for field in ("fire_lateness", "function_start_lateness")
                ],
            ]
        )
    if rows:
        out.append(
            "jobsys breakdown, ms (median / p99 / max): slot picked up (the daemon's tick "
            "that fires it began: `job_batch.lateness_ms`) and job function start (written "
            "by the job into a file, as for the others)\n"
        )
        out.append(
            _table(
                [
                    "schedules due",
                    "SQLite: slot picked up",
                    "SQLite: job function start",
                    "MariaDB: slot picked up",
                    "MariaDB: job function start",
                ],
                rows,
            )
            + "\n"
        )

    # -- idle
    out.append("### 2. Idle cost (schedules enabled, nothing due)\n")

    def idle(prefix: str, fmt: Callable[[dict[str, Any]], str]) -> str:
        return _cell(res, prefix, fmt)

    rows = []
    for be in ("sqlite", "mysql"):
        if not any(k.startswith(f"jobsys.{be}.idle") for k in res):
            continue
        r60 = f"jobsys.{be}.idle.poll60000"
        short = [k for k in res if k.startswith(f"jobsys.{be}.idle.poll") and k != r60]
        rows.append(
            [
                f"jobsys {'SQLite' if be == 'sqlite' else 'MariaDB'}",
                idle(r60, lambda r: f"{r['statements_per_hour_at_this_poll']}"),
                idle(r60, lambda r: f"{r['cpu_s_per_hour_at_this_poll']:.3f}"),
                idle(r60, lambda r, be=be: _per_poll(r, be)),
                idle(r60, lambda r: f"{r['window_s']:.0f} s, {r['polls_in_window']} polls"),
                *(
                    [
                        idle(
                            short[0],
                            lambda r: (
                                f"{r['statements_per_hour_at_60s_poll']} stmts, "
                                f"{r['cpu_s_per_hour_at_60s_poll']:.3f} CPU s "
                                f"(measured {r['window_s']:.0f} s at "
                                f"{r['poll_interval_s']:g} s poll: "
                                f"{r['statements_per_poll']:.1f} stmts and "
                                f"{r['cpu_ms_per_poll']:.1f} ms CPU per poll)"
                            ),
                        )
                    ]
                    if short
                    else ["-"]
                ),
            ]
        )
    for be in ("sqlite", "mysql"):
        key = f"apscheduler.{be}.idle"
        if key in res:
            rows.append(
                [
                    f"APScheduler {'SQLite' if be == 'sqlite' else 'MariaDB'} store",
                    idle(key, lambda r: f"{r['statements_per_hour']}"),
                    idle(key, lambda r: f"{r['cpu_s_per_hour']:.3f}"),
                    "never polls its store",
                    idle(key, lambda r: f"{r['window_s']:.0f} s"),
                    "",
                ]
            )
    if "celery.idle.beat" in res:
        rows.append(
            [
                "Celery beat",
                "0 (no database)",
                idle("celery.idle.beat", lambda r: f"{r['cpu_s_per_hour']:.3f}"),
                "wakes every ≤ 300 s",
                idle("celery.idle.beat", lambda r: f"{r['window_s']:.0f} s"),
                "",
            ]
        )
    if "celery.idle.worker" in res:
        rows.append(
            [
                "Celery worker (prefork 4)",
                "(Redis polling)",
                idle("celery.idle.worker", lambda r: f"{r['cpu_s_per_hour']:.3f}"),
                "",
                idle("celery.idle.worker", lambda r: f"{r['window_s']:.0f} s"),
                "",
            ]
        )
    if rows:
        out.append(
            _table(
                [
                    "",
                    "statements / hour (default 60 s poll, measured)",
                    "CPU s / hour (measured)",
                    "per poll",
                    "window",
                    "short poll, scaled to per hour at 60 s",
                ],
                rows,
            )
            + "\n"
        )

    # -- run now
    rows = []
    for be in ("sqlite", "mysql"):
        for mode in ("wake", "nowake"):
            key = f"jobsys.{be}.runnow.{mode}"
            if key not in res:
                continue
            r = res[key]
            label = (
                "wake-up channel"
                if mode == "wake"
                else (f"no wake-up, {r.get('poll_interval_s', '?')} s poll")
            )

            def fmt(r: dict[str, Any], f: str) -> str:
                s = r[f]
                return f"{_ms(s['median_ms'])} / {_ms(s['p95_ms'])} (n={s['n']})"

            rows.append(
                [
                    f"jobsys {'SQLite' if be == 'sqlite' else 'MariaDB'}",
                    label,
                    _cell(res, key, lambda r: fmt(r, "request_to_started_at")),
                    _cell(res, key, lambda r: fmt(r, "request_to_observed_running")),
                ]
            )
    if rows:
        out.append("### 3. Run-Now latency, ms (median / p95)\n")
        out.append(
            _table(
                ["", "mode", "request → started_at", "request → seen RUNNING (5 ms polling)"],
                rows,
            )
            + "\n"
        )

    # -- burst
    concs = sorted({int(k.rsplit(".c", 1)[1]) for k in res if ".burst.c" in k})
    if concs:
        out.append("### 4. Burst: one batch (jobsys) / N tasks of no-op jobs → all done\n")
        rows = []
        for c in concs:
            row = [str(c)]
            for _, prefix in COLUMNS:
                row.append(
                    _cell(
                        res,
                        f"{prefix}.burst.c{c}",
                        lambda r: (
                            f"{r['total_s']:.2f} s ({r.get('runs', r.get('jobs', r.get('tasks')))}"
                            f" in {r.get('runs_per_s', r.get('jobs_per_s', r.get('tasks_per_s')))}"
                            "/s)"
                        ),
                    )
                )
            rows.append(row)
        out.append(_table(["concurrency", *[c for c, _ in COLUMNS]], rows) + "\n")

    # -- daemon CPU per run (burst)
    rows = []
    for be in ("sqlite", "mysql"):
        for c in concs:
            key = f"jobsys.{be}.burst.c{c}"
            if key in res and _get(res[key], "daemon_cpu_s") is not None:
                r = res[key]
                per_run = r.get("daemon_cpu_ms_per_run") or r["daemon_cpu_s"] * 1000 / r["runs"]
                rows.append(
                    [
                        f"jobsys {'SQLite' if be == 'sqlite' else 'MariaDB'}",
                        str(c),
                        f"{r['daemon_cpu_s']:.3f} s",
                        f"{per_run:.3f} ms",
                    ]
                )
    if rows:
        out.append(
            "### 4b. Daemon CPU per run in the burst (the daemon process: claims, starts, "
            "outcomes; not the fork server or workers)\n"
        )
        out.append(_table(["", "concurrency", "daemon CPU", "per run"], rows) + "\n")

    # -- the same with a fresh process per run
    rows = []
    for be in ("sqlite", "mysql"):
        name = f"jobsys {'SQLite' if be == 'sqlite' else 'MariaDB'}"
        for n in sorted(
            {
                int(k.split(".")[3])
                for k in res
                if k.startswith(f"jobsys.{be}.firing_process.") and k.endswith(".c4")
            }
        ):
            pool = res.get(f"jobsys.{be}.firing.{n}.c4")
            key = f"jobsys.{be}.firing_process.{n}.c4"
            rows.append(
                [
                    name,
                    f"{n} due: job function start, median / p99 / max",
                    _cell(res, key, lambda r: _lat(r["function_start_lateness"])),
                    _lat(pool["function_start_lateness"]) if pool else "-",
                ]
            )
        key = f"jobsys.{be}.burst_process.c4"
        if key in res:

            def burst_cell(r: dict[str, Any]) -> str:
                return f"{r['total_s']:.2f} s ({r['daemon_cpu_ms_per_run']:.3f} ms)"

            pool_key = f"jobsys.{be}.burst.c4"
            rows.append(
                [
                    name,
                    f"burst of {res[key].get('runs', '?')} no-op runs, c4: all done"
                    " (daemon CPU per run)",
                    _cell(res, key, burst_cell),
                    _cell(res, pool_key, burst_cell),
                ]
            )
    if rows:
        out.append(
            "### 4c. A fresh process per run (`JOBSYS_ISOLATION=process`), next to the "
            "default warm worker pool (concurrency 4; reported, no target)\n"
        )
        out.append(_table(["", "measurement", "process per run", "worker pool"], rows) + "\n")

    # -- memory
    def mib(kb: Any) -> str:
        return "-" if kb is None else f"{kb / 1024:.0f}"

    rows = []
    for be in ("sqlite", "mysql"):
        name = "SQLite" if be == "sqlite" else "MariaDB"
        key = f"jobsys.{be}.memory"
        if key in res and "error" not in res[key]:
            r = res[key]
            workers = r.get("after_idle_workers_rss_kb", r.get("after_start_workers_rss_kb"))
            daemon = r.get("after_idle_rss_kb", r.get("after_start_rss_kb"))
            rows.append(
                [
                    f"jobsys {name}: daemon",
                    str(r["schedules"]),
                    f"{mib(r.get('after_start_rss_kb'))} / {mib(r.get('after_start_hwm_kb'))}",
                    f"{mib(r.get('after_idle_rss_kb'))} / {mib(r.get('after_idle_hwm_kb'))}",
                ]
            )
            rows.append(
                [
                    f"jobsys {name}: workers ({r.get('after_idle_workers', '?')} processes: "
                    "fork server, pool)",
                    "",
                    mib(r.get("after_start_workers_rss_kb")),
                    mib(r.get("after_idle_workers_rss_kb")),
                ]
            )
            rows.append(
                [
                    f"jobsys {name}: total",
                    "",
                    "",
                    "-" if daemon is None or workers is None else mib(daemon + workers),
                ]
            )
        elif key in res:
            rows.append([f"jobsys {name}", "", res[key]["error"], ""])
        key = f"apscheduler.{be}.memory"
        if key in res and "error" not in res[key]:
            r = res[key]
            rows.append(
                [
                    f"APScheduler {name} store (one process, threads)",
                    str(r["jobs"]),
                    f"{mib(r.get('after_start_rss_kb'))} / {mib(r.get('after_start_hwm_kb'))}",
                    f"{mib(r.get('after_idle_rss_kb'))} / {mib(r.get('after_idle_hwm_kb'))}",
                ]
            )
    if "celery.memory" in res and "error" not in res["celery.memory"]:
        r = res["celery.memory"]
        rows.append(["Celery beat", str(r["entries"]), "", mib(r["beat_rss_kb"])])
        rows.append(
            [
                f"Celery worker ({r['worker_processes']} processes, -c {r['concurrency']})",
                "",
                "",
                mib(r["worker_rss_kb"]),
            ]
        )
        rows.append(["Celery total (beat + worker)", "", "", mib(r["total_rss_kb"])])
    if rows:
        out.append(
            "### 5. Memory with many schedules enabled, MiB (VmRSS / VmHWM): jobsys daemon "
            "and its worker processes, APScheduler, Celery beat + worker\n"
        )
        out.append(_table(["", "schedules", "after start-up", "after idling"], rows) + "\n")

    # -- scaling
    scale = {
        k: v
        for k, v in res.items()
        if ".scaling.d" in k and isinstance(v, dict) and "error" not in v
    }
    if scale:
        out.append(
            "### 6. Work shared across daemons: one batch of N runs of a 1-second job, "
            "concurrency 4 per daemon, MariaDB\n"
        )
        rows = []
        for key in sorted(scale, key=lambda k: int(k.rsplit(".d", 1)[1])):
            r = scale[key]
            rows.append(
                [
                    str(r["daemons"]),
                    str(r["runs"]),
                    f"{r['total_s']:.1f} s (ideal {r['ideal_s']:.1f} s)",
                    ", ".join(str(n) for n in r["runs_per_daemon"]),
                    ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items())),
                ]
            )
        out.append(
            _table(["daemons", "runs", "all done", "runs per daemon", "statuses"], rows) + "\n"
        )
        ratio = scaling_ratio(res)
        if ratio is not None:
            out.append(f"Scaling ratio (one daemon's time / three daemons' time): {ratio:.2f}x\n")

    # -- targets
    rows = []
    for be in ("sqlite", "mysql"):
        for label, suffix, field, limit in TARGETS:
            key = f"jobsys.{be}.{suffix}"
            value = _get(res.get(key), field)
            if key not in res:
                continue
            rows.append(
                [
                    f"{label} ({be})",
                    f"< {_ms(limit)}" + (" ms" if limit < 1000 else ""),
                    _ms(value) + (" ms" if value is not None and value < 1000 else ""),
                    "-" if value is None else ("met" if value < limit else "MISSED"),
                ]
            )
        key = f"jobsys.{be}.burst.c4"
        if key in res and _get(res[key], "runs") == 1000:
            value = _get(res[key], "total_s")
            ok = _get(res[key], "statuses.SUCCESS") == _get(res[key], "runs")
            limit = BURST_TARGET_S[be]
            rows.append(
                [
                    f"burst 1,000 runs, concurrency 4 ({be})",
                    f"< {limit:g} s, all SUCCESS",
                    "-" if value is None else f"{value:.2f} s",
                    "-" if value is None else ("met" if value < limit and ok else "MISSED"),
                ]
            )
        key = f"jobsys.{be}.burst.c4"
        per_run = _get(res.get(key), "daemon_cpu_ms_per_run")
        if per_run is not None:
            rows.append(
                [
                    f"daemon CPU per run, burst c4 ({be})",
                    f"≤ {DAEMON_CPU_PER_RUN_MS} ms",
                    f"{per_run:.3f} ms",
                    "met" if per_run <= DAEMON_CPU_PER_RUN_MS else "MISSED",
                ]
            )
        key = f"jobsys.{be}.memory"
        rss = _get(res.get(key), "after_idle_rss_kb") or _get(res.get(key), "after_start_rss_kb")
        if rss is not None:
            rows.append(
                [
                    f"daemon RSS, {_get(res[key], 'schedules')} schedules ({be})",
                    f"≤ {MEMORY_TARGET_MIB:.0f} MiB",
                    f"{rss / 1024:.0f} MiB",
                    "met" if rss / 1024 <= MEMORY_TARGET_MIB else "MISSED",
                ]
            )
        key = f"jobsys.{be}.idle.poll60000"
        if key in res and res[key].get("polls_in_window"):
            r = res[key]
            per_poll = r["round_trips_per_poll" if be == "mysql" else "statements_per_poll"]
            rows.append(
                [
                    f"idle database work per poll ({be})",
                    "≤ 1 round trip + the heartbeat",
                    _per_poll(r, be),
                    "met" if per_poll <= 2.0 else "MISSED",
                ]
            )
    ratio = scaling_ratio(res)
    if ratio is not None:
        rows.append(
            [
                "three daemons vs one, 1-second jobs (mysql)",
                f"≥ {SCALING_TARGET}x",
                f"{ratio:.2f}x",
                "met" if ratio >= SCALING_TARGET else "MISSED",
            ]
        )
    if rows:
        out.append("### Targets\n")
        out.append(_table(["target", "limit", "measured", ""], rows) + "\n")
    return "\n".join(out)


if __name__ == "__main__":  # re-print a saved result: python bench/report.py FILE.json
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results/latest.json"
    print(render(json.loads(path.read_text())))
