"""GET /api/admin/job-runs with filters on 100,000 runs in MariaDB (issue: < 50 ms p99).

    .venv/bin/python bench/job_runs_api.py [--mysql-url mysql://root@127.0.0.1:3306/jobsys_bench_runs]
                                          [--runs 100000] [--requests 200]

Creates (and drops at the end) the database named in the URL, migrates it, seeds
``--runs`` job runs in batches of 50 (90% SUCCESS, 7% FAILED, 2% SKIPPED, 1% CANCELLED;
80% CRON from 5 schedules, 20% MANUAL) for the demo app's jobs, starts a real
``jobsys web`` process and times each filter combination over HTTP with a bearer token
(keep-alive client on the same machine). Prints median, p99 and max per filter.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobsys.loader import load_app  # noqa: E402
from jobsys.store import users  # noqa: E402
from jobsys.store.db import make_engine, normalize_url  # noqa: E402
from jobsys.store.migrate import upgrade  # noqa: E402
from jobsys.store.models import JobBatch, JobRun  # noqa: E402

STATUSES = ["SUCCESS"] * 90 + ["FAILED"] * 7 + ["SKIPPED"] * 2 + ["CANCELLED"]
SCHEDULES = ["daily-full-sync", "hourly-matching", "feed-refresh", "dev-quick-test", "nightly"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def recreate_database(url: str) -> None:
    parsed = make_url(normalize_url(url))
    server = create_engine(parsed.set(database=""))
    with server.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
        conn.execute(text(f"CREATE DATABASE `{parsed.database}` CHARACTER SET utf8mb4"))
    server.dispose()


def drop_database(url: str) -> None:
    parsed = make_url(normalize_url(url))
    server = create_engine(parsed.set(database=""))
    with server.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    server.dispose()


def seed(
    url: str,
    runs: int,
    jobs: list[str],
    *,
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    step: timedelta = timedelta(minutes=15),
    rng_seed: int = 7,
    run_seconds: Callable[[int], int] = lambda position: 1,
) -> None:
    """Bulk insert: batches of 50 runs ``step`` apart from ``start`` (one multi-row INSERT
    per 2,000), then their runs (5,000 per statement; the run at ``position`` in its batch
    lasts ``run_seconds(position)``), then ANALYZE so the optimizer knows the tables."""
    rng = random.Random(rng_seed)
    engine = make_engine(url)
    upgrade(engine)
    per_batch = 50
    batches = max(1, runs // per_batch)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        batch_rows = []
        for b in range(batches):
            at = start + step * b
            manual = rng.random() < 0.2
            batch_rows.append(
                {
                    "schedule_id": None if manual else SCHEDULES[b % len(SCHEDULES)],
                    "trigger": "MANUAL" if manual else "CRON",
                    "scheduled_for": None if manual else at,
                    "status": "SUCCESS",
                    "mode": "ALL_JOBS",
                    "total_runs": per_batch,
                    "created_at": at,
                    "updated_at": at,
                    "finished_at": at,
                }
            )
        for i in range(0, len(batch_rows), 2000):
            conn.execute(insert(JobBatch), batch_rows[i : i + 2000])
        batch_info = conn.execute(
            select(
                JobBatch.id, JobBatch.schedule_id, JobBatch.trigger, JobBatch.created_at
            ).order_by(JobBatch.id)  # type: ignore[call-overload]
        ).all()
    rows = []
    for batch_id, schedule_id, trigger, at in batch_info:
        for position in range(per_batch):
            status = rng.choice(STATUSES)
            rows.append(
                {
                    "batch_id": batch_id,
                    "job_name": jobs[position % len(jobs)],
                    "status": status,
                    "trigger": trigger,
                    "schedule_id": schedule_id,
                    "position": position,
                    "depends_on": [],
                    "queued_at": at,
                    "started_at": at,
                    "finished_at": at + timedelta(seconds=run_seconds(position)),
                    "duration_ms": rng.randint(5, 5000),
                    "error": "RuntimeError: demo failure" if status == "FAILED" else None,
                    "cancel_requested": False,
                    "updated_at": at,
                }
            )
    for i in range(0, len(rows), 5000):
        with engine.begin() as conn:
            conn.execute(insert(JobRun), rows[i : i + 5000])
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE TABLE job_run, job_batch"))
    print(
        f"seeded {len(rows):,} runs in {len(batch_info):,} batches "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/jobsys_bench_runs")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    app = load_app(None)
    jobs = list(app.jobs)
    recreate_database(args.mysql_url)
    web: subprocess.Popen[bytes] | None = None
    try:
        seed(args.mysql_url, args.runs, jobs)
        engine = make_engine(args.mysql_url)
        now = datetime.now(UTC)
        users.create_user(engine, "bench@example.com", "bench-password", "viewer", now=now)
        token = users.create_token(engine, "bench@example.com", now=now)
        with engine.connect() as conn:
            mid_id = conn.execute(text("SELECT MAX(id) DIV 2 FROM job_run")).scalar_one()
            some_batch = conn.execute(text("SELECT MAX(batch_id) DIV 3 FROM job_run")).scalar_one()
        engine.dispose()

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "DATABASE_URL"))}
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=args.mysql_url,
            SECRET_KEY="b" * 32,
            JOBSYS_LOG_LEVEL="WARNING",
        )
        web = subprocess.Popen(
            [sys.executable, "-m", "jobsys", "web", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("web did not start")
                time.sleep(0.2)
            filters: dict[str, dict[str, str]] = {
                "no filter": {},
                "job": {"job": jobs[3]},
                "status=FAILED": {"status": "FAILED"},
                "status=CANCELLED": {"status": "CANCELLED"},
                "trigger=MANUAL": {"trigger": "MANUAL"},
                "schedule_id": {"schedule_id": SCHEDULES[1]},
                "job+status=FAILED": {"job": jobs[5], "status": "FAILED"},
                "job+status=CANCELLED": {"job": jobs[7], "status": "CANCELLED"},
                "schedule+status+trigger": {
                    "schedule_id": SCHEDULES[2],
                    "status": "FAILED",
                    "trigger": "CRON",
                },
                "batch_id": {"batch_id": str(some_batch)},
                "page 2 (cursor), status=FAILED": {"status": "FAILED", "cursor": str(mid_id)},
                "limit=200": {"limit": "200"},
                # issue 11: the runs page's time window and error text
                "from/to (one day)": {"from": "2026-01-10T00:00:00Z", "to": "2026-01-11T00:00:00Z"},
                "from (wide)": {"from": "2026-01-02T00:00:00Z"},
                "error=demo": {"error": "demo failure"},
                "error, no match": {"error": "no such text"},
                "status=FAILED+error": {"status": "FAILED", "error": "demo"},
            }
            print(
                f"\nGET /api/admin/job-runs on {args.runs:,} runs (MariaDB), "
                f"{args.requests} requests each"
            )
            print("| filter | median ms | p99 ms | max ms | rows |\n|---|---|---|---|---|")
            worst = 0.0
            for name, params in filters.items():
                for _ in range(5):
                    client.get("/api/admin/job-runs", params=params)
                times = []
                rows = 0
                for _ in range(args.requests):
                    t = time.perf_counter()
                    response = client.get("/api/admin/job-runs", params=params)
                    times.append((time.perf_counter() - t) * 1000)
                    response.raise_for_status()
                    rows = len(response.json()["runs"])
                times.sort()
                p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                worst = max(worst, p99)
                print(
                    f"| {name} | {statistics.median(times):.1f} | {p99:.1f} "
                    f"| {times[-1]:.1f} | {rows} |"
                )
            print(f"\nworst p99: {worst:.1f} ms (target < 50 ms)")
            # issue 11: a job's page (GET /jobs/{name}: last 50 runs, durations, rates)
            print("\n| other route | median ms | p95 ms | max ms |\n|---|---|---|---|")
            for path in (f"/api/admin/jobs/{jobs[3]}", f"/api/admin/jobs/{jobs[0]}"):
                for _ in range(5):
                    client.get(path).raise_for_status()
                times = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    client.get(path).raise_for_status()
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                print(
                    f"| GET {path} | {statistics.median(times):.1f} | {p95:.1f} | {times[-1]:.1f} |"
                )
    finally:
        if web is not None:
            web.terminate()
            web.wait(10)
        drop_database(args.mysql_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
