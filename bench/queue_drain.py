"""Drain rate of a deep queue of one job (issue 12 item 8).

Queues N no-op runs of one job (Run Now batches, inserted in bulk), starts a real
``jobsys daemon`` and measures how fast it drains the first ``--count`` runs: runs per
second between the first run's start and the ``count``-th run's end (from job_run).
Run with 100 and with 10,000 queued: the rates should match.

    .venv/bin/python bench/queue_drain.py                       # SQLite, 100 and 10000
    .venv/bin/python bench/queue_drain.py --db mysql --mysql-url mysql://root@127.0.0.1:3306/jobsys_bench
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobsys.definitions import App  # noqa: E402
from jobsys.store import migrate  # noqa: E402
from jobsys.store.db import make_engine, write_engine  # noqa: E402
from jobsys.store.models import JobBatch, JobRun  # noqa: E402
from jobsys.store.schedules import sync_definitions  # noqa: E402

APP = (
    'from jobsys import App\napp = App("drain")\n\n@app.job(group="g")\ndef noop(ctx):\n    pass\n'
)


def fresh_url(db: str, tmp: Path, mysql_url: str) -> str:
    if db == "sqlite":
        return f"sqlite:///{tmp / 'drain.db'}"
    base, _, name = mysql_url.rpartition("/")
    server = create_engine(base.replace("mysql://", "mysql+pymysql://", 1) + "/")
    with server.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(text(f"CREATE DATABASE `{name}`"))
    server.dispose()
    return mysql_url


def queue(url: str, depth: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    app = App("drain")
    app.job("noop", group="g")(lambda ctx: None)
    sync_definitions(engine, app.validate(), "development", now)
    batch = {"trigger": "MANUAL", "status": "QUEUED", "mode": "JOB", "total_runs": 1}
    with write_engine(engine).begin() as conn:
        conn.execute(insert(JobBatch), [{**batch, "created_at": now, "updated_at": now}] * depth)
        ids = sorted(conn.execute(select(JobBatch.id)).scalars())  # type: ignore[call-overload]
        conn.execute(
            insert(JobRun),
            [
                {
                    "batch_id": bid,
                    "job_name": "noop",
                    "status": "QUEUED",
                    "trigger": "MANUAL",
                    "depends_on": [],
                    "position": 0,
                    "queued_at": now,
                    "updated_at": now,
                }
                for bid in ids
            ],
        )
    engine.dispose()


def drain_rate(url: str, tmp: Path, count: int) -> float:
    app_path = tmp / "drain_app.py"
    app_path.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSYS_", "SCHEDULE_"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=url, JOBSYS_APP=str(app_path))
    env.update(JOBSYS_WAKE_HOST="127.0.0.1", JOBSYS_LOG_LEVEL="WARNING")
    engine = make_engine(url)
    with open(tmp / "daemon.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobsys", "daemon"], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = conn.execute(
                    text("SELECT COUNT(*) FROM job_run WHERE status = 'SUCCESS'")
                ).scalar_one()
            if done >= count:
                break
            time.sleep(0.2)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT started_at, finished_at FROM job_run WHERE status = 'SUCCESS' "
                    f"ORDER BY finished_at LIMIT {int(count)}"
                )
            ).all()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        engine.dispose()
    first = min(_dt(r[0]) for r in rows)
    last = max(_dt(r[1]) for r in rows)
    return len(rows) / max(1e-6, (last - first).total_seconds())


def _dt(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "mysql"), default="sqlite")
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/jobsys_bench")
    parser.add_argument("--depths", default="100,10000")
    parser.add_argument("--count", type=int, default=100, help="runs drained per measurement")
    args = parser.parse_args()
    for depth in (int(d) for d in args.depths.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            url = fresh_url(args.db, Path(tmp), args.mysql_url)
            queue(url, depth)
            rate = drain_rate(url, Path(tmp), min(args.count, depth))
            print(
                f"{args.db}: {depth:>6} queued: {rate:7.1f} runs/s (first {min(args.count, depth)})"
            )


if __name__ == "__main__":
    main()
