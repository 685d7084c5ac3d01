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
    ("firing lateness p99, 1 schedule", "firing.1.c4", "start_lateness.p99_ms", 20.0),
    ("firing lateness p99, 100 schedules", "firing.100.c4", "start_lateness.p99_ms", 100.0),
    ("firing lateness p99, 1,000 schedules", "firing.1000.c4", "start_lateness.p99_ms", 1500.0),
    ("Run-Now latency median, wake-up", "runnow.wake", "request_to_started_at.median_ms", 300.0),
    ("Run-Now latency p95, wake-up", "runnow.wake", "request_to_started_at.p95_ms", 300.0),
]
BURST_TARGET_S = {"sqlite": 3.0, "mysql": 5.0}


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

    # -- memory
    rows = []
    for be in ("sqlite", "mysql"):
        key = f"jobsys.{be}.memory"
        if key in res:
            rows.append(
                [
                    f"jobsys {'SQLite' if be == 'sqlite' else 'MariaDB'}",
                    _cell(res, key, lambda r: f"{r['schedules']}"),
                    _cell(res, key, lambda r: f"{r['daemon_startup_s']:.1f} s"),
                    _cell(
                        res,
                        key,
                        lambda r: (
                            f"{r['after_start_rss_kb'] / 1024:.0f} / "
                            f"{r['after_start_hwm_kb'] / 1024:.0f}"
                        ),
                    ),
                    _cell(
                        res,
                        key,
                        lambda r: (
                            f"{r['after_idle_rss_kb'] / 1024:.0f} / "
                            f"{r['after_idle_hwm_kb'] / 1024:.0f} (after {r['idle_s']:.0f} s)"
                        ),
                    ),
                ]
            )
    if rows:
        out.append("### 5. Daemon memory with many schedules enabled, MiB (VmRSS / VmHWM)\n")
        out.append(
            _table(["", "schedules", "start-up", "after start-up", "after idling"], rows) + "\n"
        )

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
    if rows:
        out.append("### Targets\n")
        out.append(_table(["target", "limit", "measured", ""], rows) + "\n")
    return "\n".join(out)


if __name__ == "__main__":  # re-print a saved result: python bench/report.py FILE.json
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results/latest.json"
    print(render(json.loads(path.read_text())))
