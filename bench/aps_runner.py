"""One APScheduler 3.x process for the comparison (started by bench/run.py).

``BackgroundScheduler`` with a ``SQLAlchemyJobStore`` (the persistent store, as jobsys
keeps its state in SQL) and a ``ThreadPoolExecutor``. Modes:

``fire``  on SIGUSR1 (sent a few seconds before a minute boundary) add ``--count`` jobs
          with the cron trigger ``* * * * *`` (misfire grace 60 s as jobsys's default
          grace, coalesce); each run appends ``<job id> <start time>`` to
          ``$BENCH_MARKS``.
``idle``  ``--count`` jobs on ``0 0 1 1 *``; counters as in ``daemon_with_stats.py``
          (SIGUSR1 writes a snapshot to ``--stats``).
``memory`` ``--count`` jobs spread over the minutes, hours and days of month
          ``--month`` (as jobsys's memory app: nothing is due), no counters.
``burst`` ``--count`` jobs added with ``next_run_time`` = now (date trigger, no misfire
          limit); writes ``{"add_s", "total_s", ...}`` to ``--out`` when all ran.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import create_engine, text

FINISHED: list[float] = []
_DONE = threading.Event()
_TARGET = [0]
_LOCK = threading.Lock()


def fire_noop(job_id: str) -> None:
    stamp = time.time()
    path = os.environ.get("BENCH_MARKS")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{job_id} {stamp:.6f}\n".encode())
        finally:
            os.close(fd)


_WARM = threading.Event()


def warm_noop() -> None:
    _WARM.set()


def burst_noop() -> None:
    with _LOCK:
        FINISHED.append(time.time())
        if len(FINISHED) >= _TARGET[0]:
            _DONE.set()


def _store_engine(url: str) -> Any:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))
    return engine


def _scheduler(url: str, workers: int) -> BackgroundScheduler:
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=_store_engine(url))},
        executors={"default": ThreadPoolExecutor(workers)},
        timezone=UTC,
    )


def _status(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("fire", "idle", "memory", "burst"))
    parser.add_argument("--month", type=int, default=1)
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--stats", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    stop = threading.Event()
    arm = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if args.mode == "fire":
        signal.signal(signal.SIGUSR1, lambda signum, frame: arm.set())
    if args.mode == "idle":
        from bench.daemon_with_stats import install, write_snapshot

        install(args.stats)
    scheduler = _scheduler(args.url, args.workers)
    scheduler.start()
    if args.mode == "fire":
        # One job through the store and the pool first, as jobsys's daemon is warmed up.
        scheduler.add_job(warm_noop, "date", run_date=datetime.now(UTC), misfire_grace_time=None)
        _WARM.wait(30)
    _status(args.out, {"state": "ready", "time": time.time()})
    try:
        if args.mode == "fire":
            while not arm.is_set() and not stop.is_set():
                arm.wait(0.1)
            armed_from = time.time()
            for i in range(args.count):
                job_id = f"a{i:04d}"
                scheduler.add_job(
                    fire_noop,
                    CronTrigger.from_crontab("* * * * *", timezone=UTC),
                    args=[job_id],
                    id=job_id,
                    misfire_grace_time=60,
                    coalesce=True,
                    max_instances=1,
                )
            _status(args.out, {"state": "armed", "from": armed_from, "time": time.time()})
        elif args.mode == "idle":
            for i in range(args.count):
                scheduler.add_job(
                    fire_noop,
                    CronTrigger.from_crontab("0 0 1 1 *", timezone=UTC),
                    args=[f"i{i:03d}"],
                    id=f"i{i:03d}",
                )
            _status(args.out, {"state": "armed", "time": time.time()})
        elif args.mode == "memory":
            t0 = time.time()
            for i in range(args.count):
                cron = f"{i % 60} {(i // 60) % 24} {1 + (i // 1440) % 28} {args.month} *"
                scheduler.add_job(
                    fire_noop,
                    CronTrigger.from_crontab(cron, timezone=UTC),
                    args=[f"m{i:05d}"],
                    id=f"m{i:05d}",
                )
            _status(
                args.out,
                {"state": "armed", "time": time.time(), "add_s": round(time.time() - t0, 1)},
            )
        else:
            _TARGET[0] = args.count
            time.sleep(0.5)
            t0 = time.time()
            now = datetime.now(UTC)
            for i in range(args.count):
                scheduler.add_job(
                    burst_noop, "date", run_date=now, id=f"b{i:04d}", misfire_grace_time=None
                )
            added = time.time()
            _DONE.wait(600)
            _status(
                args.out,
                {
                    "state": "done",
                    "jobs": args.count,
                    "ran": len(FINISHED),
                    "add_s": round(added - t0, 3),
                    "total_s": round(max(FINISHED) - t0, 3) if FINISHED else None,
                    "time": time.time(),
                },
            )
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        if args.mode == "idle":
            write_snapshot(args.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
